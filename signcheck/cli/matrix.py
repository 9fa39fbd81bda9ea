"""`signcheck matrix`: the whole suite once per pinned Kyverno version, side by side.

Each version is a whole normal run (`pytest tests --kyverno-version V`: its own local
environment, run id and reports under `<reports>/matrix/V/`); `report.matrix` then compares
their `summary.json` files into `<reports>/matrix.json` and `<reports>/matrix.html`.
Documented in docs/matrix.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from signcheck import redact
from signcheck.cli import children
from signcheck.cli.children import default_jobs
from signcheck.errors import ConfigError
from signcheck.report import matrix as report_matrix
from signcheck.report.compare import RunResult
from signcheck.run import interrupts

OWNED_OPTIONS = ("--kyverno-version", "--signcheck-reports")
"""Set by the matrix for each run; given again among the pytest arguments they would clash."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "matrix",
        help="run the suite once per pinned Kyverno version and compare the outcomes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--kyverno",
        default=None,
        metavar="V1,V2",
        help="comma-separated pinned Kyverno versions (default: every pinned one; "
        "`signcheck tools list kyverno`)",
    )
    p.add_argument(
        "--reports",
        type=Path,
        default=Path("reports"),
        help="where matrix.json, matrix.html and matrix/<version>/ go (default: reports)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help=f"runs at once (default: half the CPUs, {default_jobs()} here): each run boots "
        "its own local Kubernetes environment and needs about two cores",
    )
    p.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        metavar="-- PYTEST_ARGS",
        help="after `--`: arguments for every pytest run (e.g. -- -k ATK --nodes kwok)",
    )
    p.set_defaults(func=cmd_matrix)


def selected_versions(option: str | None) -> list[str]:
    from signcheck.tools import pins

    pinned = pins.pinned_versions("kyverno")
    if option is None:
        return list(pinned)
    wanted = list(dict.fromkeys(v.strip() for v in option.split(",") if v.strip()))
    unknown = [v for v in wanted if v not in pinned]
    if unknown or not wanted:
        named = ", ".join(unknown) if unknown else repr(option)
        raise ConfigError(
            f"--kyverno {named}: not a pinned Kyverno version; pinned: {', '.join(pinned)}"
        )
    return wanted


def _pytest_args(raw: list[str]) -> list[str]:
    return children.pytest_args(
        raw, OWNED_OPTIONS, "signcheck matrix", "use --kyverno and --reports"
    )


def cmd_matrix(args: argparse.Namespace) -> int:
    versions = selected_versions(args.kyverno)
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: at least one run at a time")
    pytest_args = _pytest_args(args.pytest_args)
    if not Path("tests").is_dir():
        raise ConfigError(
            "run signcheck matrix from the signcheck checkout (its tests/ directory): "
            f"{Path.cwd()} has no tests/"
        )
    # The runs redact their own reports; this process prints their logs' last lines.
    redact.register_env()
    reports: Path = args.reports
    restore_sigterm = interrupts.sigterm_interrupts()
    try:
        runs = run_all(versions, reports, jobs, pytest_args)
    finally:
        restore_sigterm()
    matrix = report_matrix.build(runs, reports)
    json_path, html_path = report_matrix.write(matrix, reports)
    print(f"signcheck matrix: {html_path}")
    print(f"signcheck matrix: {json_path}")
    _print_differences(matrix)
    # The matrix holds when every version ran and each of its results is a judgement or a
    # documented version fact: a run that is `undetermined` only through version gates (an
    # older Kyverno that cannot be judged offline) still has every cell explained.
    bad = 0
    for entry in matrix["runs"]:
        version = entry["version"]
        if entry["error"]:
            bad += 1
            print(f"signcheck matrix: Kyverno {version}: no result: {entry['error']}")
        elif entry["unexplained"]:
            bad += 1
            listed = ", ".join(entry["unexplained"][:5])
            more = len(entry["unexplained"]) - 5
            print(
                f"signcheck matrix: Kyverno {version} (exit {entry['exit_code']}): "
                f"{len(entry['unexplained'])} results neither pass, finding nor explained by a "
                f"version gate: {listed}{f' and {more} more' if more > 0 else ''}"
            )
        elif entry["exit_code"] != 0:
            print(
                f"signcheck matrix: Kyverno {version} exited {entry['exit_code']} "
                f"({entry['verdict']}): every result a judgement or a version gate"
            )
    return 1 if bad else 0


def run_all(
    versions: list[str], reports: Path, jobs: int, pytest_args: list[str]
) -> list[RunResult]:
    """Every version's run, at most `jobs` at once (`signcheck.cli.children`)."""
    planned = [
        children.Planned(
            label=version,
            title=f"Kyverno {version}",
            reports_dir=reports / "matrix" / version,
            args=(
                "--kyverno-version",
                version,
                "--signcheck-reports",
                str(reports / "matrix" / version),
                *pytest_args,
            ),
        )
        for version in versions
    ]
    return children.run_all(planned, jobs, "signcheck matrix")


def _print_differences(matrix: dict[str, Any]) -> None:
    versions: list[str] = matrix["versions"]
    rows = [r for r in matrix["rows"] if r["differs"]]
    n = len(rows)
    print(f"signcheck matrix: {n} {'scenario differs' if n == 1 else 'scenarios differ'}")
    if not rows:
        return
    labels = [r["scenario"] or r["nodeid"] for r in rows]
    first = max(len("scenario"), *(len(label) for label in labels))
    widths = [max(len(v), *(len(r["cells"][v]["outcome"]) for r in rows)) for v in versions]
    header = ["scenario".ljust(first), *(v.ljust(w) for v, w in zip(versions, widths, strict=True))]
    print("  " + "  ".join(header).rstrip())
    for label, row in zip(labels, rows, strict=True):
        cells = [row["cells"][v]["outcome"].ljust(w) for v, w in zip(versions, widths, strict=True)]
        print("  " + "  ".join([label.ljust(first), *cells]).rstrip())
