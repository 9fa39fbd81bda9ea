"""`signcheck matrix` without any cluster: the matrix from hand-written summaries, its page,
secrets kept out of both, and the command's argument handling. No pytest run is launched."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from signcheck import cli, redact
from signcheck.cli import children
from signcheck.cli import matrix as cli_matrix
from signcheck.report.compare import RunResult, unexplained
from signcheck.report.matrix import SCHEMA, build, write
from signcheck.tools import pins

SECRET = "planted-secret-value-1"


def _test(nodeid: str, outcome: str, scenario: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "nodeid": nodeid,
        "outcome": outcome,
        "scenario": scenario,
        "step": f"step of {scenario or nodeid}",
        "message": extra.pop("message", ""),
        "cause": extra.pop("cause", ""),
        "finding": extra.pop("finding", None),
        **extra,
    }


def _summary(directory: Path, version: str, tests: list[dict[str, Any]], sentence: str) -> Path:
    directory.mkdir(parents=True)
    state = "enforced" if sentence.startswith("enforced") else "not enforced"
    summary = {
        "schema": "signcheck.summary/v2",
        "run_id": f"run-{version}",
        "versions": {"kyverno": version},
        "tests": tests,
        "verdict": {"sentence": sentence, "state": state, "exit_code": 0},
    }
    (directory / "summary.json").write_text(json.dumps(summary))
    (directory / "report.html").write_text("<html></html>")
    return directory


@pytest.fixture
def two_runs(tmp_path: Path) -> list[RunResult]:
    redact.register(SECRET)
    new = _summary(
        tmp_path / "matrix" / "v1.19.1",
        "v1.19.1",
        [
            _test("tests/test_a.py::test_canary", "pass", "CANARY-01"),
            _test("tests/test_a.py::test_atk10", "pass", "ATK-10.cpol"),
            _test("tests/test_a.py::test_atk2", "pass", "ATK-02.cpol"),
            _test("tests/test_a.py::test_only_new", "skipped", "ATK-03.vpol", message="n/a"),
            _test("tests/test_a.py::test_plain", "pass"),
        ],
        "enforced",
    )
    old = _summary(
        tmp_path / "matrix" / "v1.18.2",
        "v1.18.2",
        [
            _test("tests/test_a.py::test_canary", "pass", "CANARY-01"),
            _test("tests/test_a.py::test_atk10", "pass", "ATK-10.cpol"),
            _test(
                "tests/test_a.py::test_atk2",
                "finding",
                "ATK-02.cpol",
                message=f"admitted with token {SECRET}\nsecond line",
                finding={
                    "id": "ATK-02.cpol",
                    "title": f"unsigned image admitted (password {SECRET})",
                    "severity": "high",
                    "reference": "https://example.invalid/advisory",
                },
            ),
            _test("tests/test_a.py::test_plain", "fail", message=f"boom {SECRET}\ntraceback"),
        ],
        "enforced, with 1 finding (1 high)",
    )
    return [RunResult("v1.19.1", new, 0, None), RunResult("v1.18.2", old, 1, None)]


def test_rows_cells_and_differences(tmp_path: Path, two_runs: list[RunResult]) -> None:
    m = build(two_runs, tmp_path)
    assert m["schema"] == SCHEMA and m["versions"] == ["v1.19.1", "v1.18.2"]
    # Scenario order with numbers as numbers; tests without a scenario last.
    assert [r["scenario"] for r in m["rows"]] == [
        "ATK-02.cpol",
        "ATK-03.vpol",
        "ATK-10.cpol",
        "CANARY-01",
        "",
    ]
    rows = {r["nodeid"].rpartition("::")[2]: r for r in m["rows"]}
    assert rows["test_only_new"]["cells"]["v1.18.2"] == {"outcome": "absent"}
    assert rows["test_only_new"]["cells"]["v1.19.1"] == {"outcome": "skipped", "detail": "n/a"}
    atk2 = rows["test_atk2"]
    assert atk2["differs"] and atk2["cells"]["v1.18.2"]["outcome"] == "finding"
    assert atk2["cells"]["v1.18.2"]["detail"].startswith("unsigned image admitted")
    assert rows["test_plain"]["cells"]["v1.18.2"]["detail"] == "boom [REDACTED]"
    assert not rows["test_canary"]["differs"] and not rows["test_atk10"]["differs"]
    assert m["differences"] == 3
    run = m["runs"][1]
    assert run["kyverno_reported"] == "v1.18.2" and run["exit_code"] == 1
    assert run["report"] == "matrix/v1.18.2/report.html" and run["run_id"] == "run-v1.18.2"
    assert run["verdict"] == "enforced, with 1 finding (1 high)" and run["error"] is None
    assert m["totals"]["v1.19.1"]["pass"] == 4 and m["totals"]["v1.19.1"]["total"] == 5


def test_page_lists_differences_first(tmp_path: Path, two_runs: list[RunResult]) -> None:
    json_path, html_path = write(build(two_runs, tmp_path), tmp_path)
    assert json.loads(json_path.read_text())["differences"] == 3
    page = html_path.read_text()
    assert "3 scenarios differ between versions" in page
    assert 'href="matrix/v1.19.1/report.html"' in page
    body = page.split("<tbody>", 1)[1]
    rows = body.split("<tr")[1:]
    assert all('class="differs"' in r for r in rows[:3])
    assert not any('class="differs"' in r for r in rows[3:])
    assert "ATK-02.cpol" in rows[0] and 'class="cell o-finding"' in rows[0]
    assert 'class="cell o-absent"' in rows[1]


def test_secrets_never_in_the_matrix(tmp_path: Path, two_runs: list[RunResult]) -> None:
    json_path, html_path = write(build(two_runs, tmp_path), tmp_path)
    for path in (json_path, html_path):
        text = path.read_text()
        assert SECRET not in text and SECRET[:12] not in text
        assert "[REDACTED]" in text


def test_detail_is_cut_after_redaction(tmp_path: Path) -> None:
    redact.register(SECRET)
    # The secret straddles the cut: cut first, its head would survive unrecognised.
    message = "x" * 190 + SECRET
    d = _summary(tmp_path / "v", "v1.19.1", [_test("t::a", "fail", "A-01", message=message)], "x")
    cell = build([RunResult("v1.19.1", d)], tmp_path)["rows"][0]["cells"]["v1.19.1"]
    assert SECRET[:5] not in cell["detail"] and len(cell["detail"]) <= 200


def test_html_is_escaped(tmp_path: Path) -> None:
    d = _summary(tmp_path / "v", "v1.19.1", [_test("t::a", "fail", "A-01", message="<b>x")], "x")
    page = write(build([RunResult("v1.19.1", d)], tmp_path), tmp_path)[1].read_text()
    assert "<b>x" not in page and "&lt;b&gt;x" in page


def test_errored_run_shows_its_error(tmp_path: Path, two_runs: list[RunResult]) -> None:
    broken = RunResult("v1.18.2", tmp_path / "matrix" / "nothing", 4, "exited 4: bad option")
    m = build([two_runs[0], broken], tmp_path)
    run = m["runs"][1]
    assert run["error"] == "exited 4: bad option" and run["verdict"] is None
    assert run["report"] is None and run["totals"] == {}
    # A run that says nothing about the tests does not make every row differ.
    assert m["differences"] == 0
    assert all(r["cells"]["v1.18.2"] == {"outcome": "absent"} for r in m["rows"])
    page = write(m, tmp_path)[1].read_text()
    assert "exited 4: bad option" in page and "0 scenarios differ" in page


def test_missing_summary_without_error_is_named(tmp_path: Path) -> None:
    m = build([RunResult("v1.18.2", tmp_path / "empty", None, None)], tmp_path)
    assert m["runs"][0]["error"].startswith("no summary.json in ")


def test_unknown_version_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["matrix", "--kyverno", "v1.18.2,v0.0.1"]) == 2
    err = capsys.readouterr().err
    assert "v0.0.1" in err
    for version in pins.pinned_versions("kyverno"):
        assert version in err


def test_default_is_every_pinned_version() -> None:
    assert cli_matrix.selected_versions(None) == list(pins.pinned_versions("kyverno"))
    newest = pins.pinned_versions("kyverno")[0]
    assert cli_matrix.selected_versions(f" {newest},{newest}") == [newest]


def test_owned_options_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["matrix", "--", "--signcheck-reports=x"]) == 2
    assert "--signcheck-reports is set by signcheck matrix" in capsys.readouterr().err


def test_outside_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["matrix"]) == 2
    assert "run signcheck matrix from the signcheck checkout" in capsys.readouterr().err


def test_command_writes_matrix_and_exit_code(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    two_runs: list[RunResult],
) -> None:
    (tmp_path / "tests").mkdir()
    monkeypatch.chdir(tmp_path)
    seen: dict[str, Any] = {}

    def fake_run_all(
        versions: list[str], reports: Path, jobs: int, args: list[str]
    ) -> list[RunResult]:
        seen.update(versions=versions, jobs=jobs, args=args)
        return two_runs

    monkeypatch.setattr(cli_matrix, "run_all", fake_run_all)
    argv = ["matrix", "--reports", ".", "--jobs", "2", "--", "-k", "ATK"]
    assert cli.main(argv) == 1
    assert seen == {
        "versions": list(pins.pinned_versions("kyverno")),
        "jobs": 2,
        "args": ["-k", "ATK"],
    }
    out = capsys.readouterr().out
    assert (tmp_path / "matrix.html").is_file() and (tmp_path / "matrix.json").is_file()
    assert "3 scenarios differ" in out and "ATK-02.cpol" in out and "absent" in out
    assert "Kyverno v1.18.2 (exit 1): 1 results neither pass, finding nor explained" in out
    assert SECRET not in out


def test_a_column_stands_on_judgements_and_version_gates() -> None:
    """A failure, or an environment result without a version gate, is unexplained; a gated
    one (the older Kyverno cannot be judged offline, and says why) is not."""
    summary = {
        "tests": [
            {"nodeid": "a", "outcome": "pass"},
            {"nodeid": "b", "outcome": "finding"},
            {"nodeid": "c", "outcome": "environment", "observed": {"version_gate": "before"}},
            {"nodeid": "d", "outcome": "environment", "observed": {}},
            {"nodeid": "e", "outcome": "fail"},
            {"nodeid": "f", "outcome": "skipped"},
        ]
    }
    assert unexplained(summary) == ["d", "e"]


_TRAPS_SIGINT = """
import signal, sys, time
def stop(*_):
    open(sys.argv[1], "w").write("cleaned")
    sys.exit(2)
signal.signal(signal.SIGINT, stop)
print("ready", flush=True)
time.sleep(60)
"""


def _child(tmp_path: Path, code: str, *args: str) -> children.Child:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    plan = children.Planned("v", "Kyverno v", tmp_path, ())
    return children.Child(plan, proc, tmp_path / "log", time.monotonic())


def test_interrupt_lets_each_run_clean_up(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    child = _child(tmp_path, _TRAPS_SIGINT, str(marker))
    children.stop([child], "signcheck matrix")
    assert child.proc.returncode == 2 and marker.read_text() == "cleaned"


def test_interrupt_kills_a_run_that_does_not_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(children, "STOP_GRACE_SECONDS", 1.0)
    ignores = "import signal,time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    child = _child(tmp_path, ignores + "print('ready', flush=True)\ntime.sleep(60)\n")
    children.stop([child], "signcheck matrix")
    assert child.proc.returncode == -signal.SIGKILL


def test_parser_strips_the_separator() -> None:
    ns = cli.build_parser().parse_args(["matrix", "--", "-k", "ATK"])
    assert isinstance(ns, argparse.Namespace)
    assert cli_matrix._pytest_args(ns.pytest_args) == ["-k", "ATK"]
