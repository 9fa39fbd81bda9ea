"""The scenario catalogue, generated from the tests themselves so it never drifts.

Every conformance test carries `@pytest.mark.scenario(ID, step=..., expect=...)`; its
docstring says what it proves. A parametrized test is one scenario per case, with the case id
appended to the ID (`WL-01.deployment-cpol`); a case may override the expected outcome with
`pytest.param(..., marks=pytest.mark.expect("..."))`.

`python -m signcheck catalogue` collects the tests (nothing is started) and writes
`docs/catalogue.md`; `--check` fails when the committed file differs. The HTML report shows
the same entries with each one's outcome in the run.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from signcheck.errors import ConfigError

GROUPS = {
    "CANARY": "Before any scenario: enforcement works at all",
    "SEED": "The seed scenario",
    "ATK": "Supply-chain attacks",
    "REF": "Reference forms",
    "WL": "Workloads",
    "MODE": "Policy modes and APIs",
    "COMPAT": "Signature formats (compatibility)",
    "PRIV": "Private registry",
    "IDX": "Multi-platform image indexes",
    "ATT": "Attestations (vulnerability scan)",
    "KEY": "Keyless signatures (identities)",
    "PULL": "Pull secrets on the pod",
    "EXC": "Policy exceptions",
    "UPD": "Updates and controllers",
    "BG": "Background scanning",
    "REG": "A misbehaving registry",
    "LOAD": "Under load",
    "SCOPE": "Scoping",
}

DEFAULT_OUTPUT = Path("docs") / "catalogue.md"


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    """The scenario's step: what is done."""
    proves: str
    """What a pass proves (the test's docstring, first paragraph)."""
    expect: str
    """The exact expected outcome."""
    nodeid: str
    gates: tuple[str, ...] = ()
    """Version-gated outcomes (`signcheck.verdict.gates`) that apply to this case."""

    @property
    def group(self) -> str:
        return self.id.split("-", 1)[0]


def scenario_id(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("scenario")
    if marker is None:
        return None
    base = str(marker.args[0])
    callspec = getattr(item, "callspec", None)
    return f"{base}.{callspec.id}" if callspec is not None else base


def expectation(item: pytest.Item) -> str:
    # The innermost `expect` mark wins: a parametrized case's own over the function's.
    case = item.get_closest_marker("expect")
    if case is not None and case.args:
        return str(case.args[0])
    marker = item.get_closest_marker("scenario")
    return str(marker.kwargs.get("expect", "")) if marker else ""


def entry(item: pytest.Item) -> Entry | None:
    sid = scenario_id(item)
    if sid is None:
        return None
    marker = item.get_closest_marker("scenario")
    assert marker is not None
    func = getattr(item, "function", None)
    doc = inspect.getdoc(func) or "" if func is not None else ""
    proves = " ".join(doc.split("\n\n", 1)[0].split())
    callspec = getattr(item, "callspec", None)
    case = callspec.id if callspec is not None else None
    gates = tuple(g.summary() for g in marker.kwargs.get("versions", ()) if g.covers(case))
    return Entry(
        sid, str(marker.kwargs.get("step", "")), proves, expectation(item), item.nodeid, gates
    )


def _sort_key(e: Entry) -> tuple[int, str]:
    groups = list(GROUPS)
    return (groups.index(e.group) if e.group in groups else len(groups), e.id)


class _Collect:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.entries = [e for item in session.items if (e := entry(item)) is not None]


def collect(root: Path, tests: str = "tests") -> list[Entry]:
    """Collect the conformance tests under `root` (starting nothing) into entries."""
    plugin = _Collect()
    out = io.StringIO()
    args = [
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "--signcheck-reports",
        "",
        "--rootdir",
        str(root),
        str(root / tests),
    ]
    with contextlib.redirect_stdout(out):
        code = pytest.main(args, plugins=[plugin])
    if code != 0:
        raise ConfigError(
            f"collecting the tests failed (pytest exit {code})", out.getvalue()[-3000:]
        )
    return sorted(plugin.entries, key=_sort_key)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _expected(e: Entry) -> str:
    gated = "".join(f" **Version-gated**, Kyverno {g}." for g in e.gates)
    return e.expect + gated


def render_markdown(entries: list[Entry]) -> str:
    from signcheck.run.scenarios import VARIANTS

    ids = [e.id for e in entries]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"scenario IDs must be unique: {', '.join(duplicates)}")
    lines = [
        "# Scenario catalogue",
        "",
        "<!-- Generated by `python -m signcheck catalogue` from the tests' scenario markers and",
        "docstrings; do not edit. selftests/suite/test_catalogue.py fails when it drifts. -->",
        "",
        f"{len(entries)} scenarios. Each ID is stable; a parametrized scenario's case is the "
        "part after the dot. Every denial is asserted by webhook, policy, rule (where the API "
        "has rules) and reason, with an admitted control beside it. "
        f"{sum(1 for e in entries if e.gates)} are version-gated: on an older Kyverno a "
        "described failure is that version's outcome (a finding or an environment result, "
        "with its reference), see `signcheck.verdict.gates` and docs/matrix.md.",
        "",
    ]
    for group, title in GROUPS.items():
        mine = [e for e in entries if e.group == group]
        if not mine:
            continue
        lines += [
            f"## {title}",
            "",
            "| ID | Scenario | What it proves | Expected outcome |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {e.id} | {_cell(e.title)} | {_cell(e.proves)} | {_cell(_expected(e))} |"
            for e in mine
        ]
        lines.append("")
    lines += [
        "## Policy variants",
        "",
        "Applied once per run beside the seed's policy; each governs only the run's namespaces "
        "labelled `signcheck.io/variant=<variant>` (the seed's policy governs the run's "
        "namespaces without that label).",
        "",
        "| variant | API | what differs from the seed's policy |",
        "|---|---|---|",
    ]
    for v in VARIANTS.values():
        api = "ClusterPolicy" if v.api == "cpol" else "ImageValidatingPolicy"
        lines.append(f"| `{v.name}` | {api} | {_cell(v.about)} |")
    lines.append("")
    return "\n".join(lines)


def write(root: Path, output: Path | None, check: bool) -> int:
    """Write (or with `check`, compare) the catalogue of the tests under `root`."""
    root = root.resolve()
    if not (root / "tests").is_dir():
        raise ConfigError(f"{root} has no tests/ directory: run from the checkout or pass --root")
    output = output or root / DEFAULT_OUTPUT
    text = render_markdown(collect(root))
    if check:
        current = output.read_text() if output.is_file() else ""
        if current != text:
            print(
                f"{output} is out of date with the tests: run `python -m signcheck catalogue`",
                file=sys.stderr,
            )
            return 1
        print(f"{output} matches the tests")
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"wrote {output}")
    return 0
