"""`signcheck matrix`: the whole suite once per pinned Kyverno version, side by side.

Each version is a whole normal run (`pytest tests --kyverno-version V`: its own local
environment, run id and reports under `<reports>/matrix/V/`); `report.matrix` then compares
their `summary.json` files into `<reports>/matrix.json` and `<reports>/matrix.html`.
Documented in docs/matrix.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signcheck import redact
from signcheck.errors import ConfigError
from signcheck.report import matrix as report_matrix
from signcheck.report.matrix import MatrixRun
from signcheck.run import interrupts

POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 60.0
"""After Ctrl-C: how long each run gets to remove its environment before it is killed."""
OWNED_OPTIONS = ("--kyverno-version", "--signcheck-reports")
"""Set by the matrix for each run; given again among the pytest arguments they would clash."""
REPORT_FILES = ("summary.json", "report.html", "junit.xml")


def default_jobs() -> int:
    # Each run boots its own local Kubernetes environment: about two cores each.
    return max(1, (os.cpu_count() or 1) // 2)


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
    args = raw[1:] if raw[:1] == ["--"] else list(raw)
    for arg in args:
        for option in OWNED_OPTIONS:
            if arg == option or arg.startswith(option + "="):
                raise ConfigError(
                    f"{option} is set by signcheck matrix for each run: leave it out of the "
                    "pytest arguments (use --kyverno and --reports)"
                )
    return args


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


@dataclass
class _Child:
    version: str
    proc: subprocess.Popen[bytes]
    reports_dir: Path
    log: Path
    started: float


def run_all(
    versions: list[str], reports: Path, jobs: int, pytest_args: list[str]
) -> list[MatrixRun]:
    """Every version's run, at most `jobs` at once; on Ctrl-C (or SIGTERM) each running
    child is interrupted like a terminal Ctrl-C and given time to remove its environment."""
    pending = list(versions)
    running: list[_Child] = []
    done: dict[str, MatrixRun] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                started = _start(pending.pop(0), reports, pytest_args)
                if isinstance(started, MatrixRun):
                    done[started.version] = started
                else:
                    running.append(started)
            time.sleep(POLL_SECONDS)
            for child in list(running):
                code = child.proc.poll()
                if code is not None:
                    running.remove(child)
                    done[child.version] = _finish(child, code)
    except KeyboardInterrupt:
        _stop(running)
        raise
    return [done[v] for v in versions]


def _start(version: str, reports: Path, pytest_args: list[str]) -> _Child | MatrixRun:
    reports_dir = reports / "matrix" / version
    reports_dir.mkdir(parents=True, exist_ok=True)
    # A previous matrix's files would be read as this run's if this one writes none.
    for name in REPORT_FILES:
        (reports_dir / name).unlink(missing_ok=True)
    log = reports_dir / "pytest.log"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "tests",
        # Concurrent runs in one checkout would race on .pytest_cache.
        "-p",
        "no:cacheprovider",
        "--kyverno-version",
        version,
        "--signcheck-reports",
        str(reports_dir),
        *pytest_args,
    ]
    try:
        with log.open("wb") as out:
            # A session of its own: a terminal Ctrl-C reaches this process only, which then
            # interrupts each run exactly once (a second SIGINT would abandon its cleanup).
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_interrupt_when_orphaned,
            )
    except OSError as err:
        print(f"signcheck matrix: Kyverno {version} could not start: {err}", flush=True)
        return MatrixRun(version, reports_dir, None, f"could not start pytest: {err}")
    print(f"signcheck matrix: {version} started (log: {log})", flush=True)
    return _Child(version, proc, reports_dir, log, time.monotonic())


def _interrupt_when_orphaned() -> None:
    """In the child, before pytest starts: when `signcheck matrix` dies without passing on
    an interrupt (killed, or a closed pipe on its output), the kernel sends the run SIGINT, so
    it stops and removes its environment instead of running on unowned (Linux prctl
    PR_SET_PDEATHSIG; elsewhere a no-op)."""
    # A matrix started in the background of a non-interactive shell has SIGINT ignored, and
    # a Python that starts with it ignored never raises KeyboardInterrupt: the run must take
    # the interrupt this command passes on.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT)
    except (OSError, AttributeError):
        pass


PR_SET_PDEATHSIG = 1


def _finish(child: _Child, code: int) -> MatrixRun:
    seconds = round(time.monotonic() - child.started)
    sentence = _verdict_sentence(child.reports_dir / "summary.json")
    error = None
    if sentence is None:
        ended = f"killed by signal {-code}" if code < 0 else f"exited {code}"
        error = f"{ended} without a summary.json"
        if last := _last_log_line(child.log):
            error += f"; last log line: {last}"
        sentence = error
    print(
        f"signcheck matrix: {child.version} done in {seconds} s: {sentence} (exit {code})",
        flush=True,
    )
    return MatrixRun(child.version, child.reports_dir, code, error)


def _verdict_sentence(path: Path) -> str | None:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        sentence = data["verdict"]["sentence"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return redact.redact(str(sentence)) if sentence else None


def _last_log_line(log: Path) -> str:
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - 16384))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    last = redact.redact(lines[-1]) if lines else ""
    return last[:200]


def _signal(child: _Child, sig: signal.Signals) -> None:
    # The child's process group, as a terminal would: pytest-xdist's workers are in it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.proc.pid, sig)


def _stop(running: list[_Child]) -> None:
    if not running:
        return
    names = ", ".join(c.version for c in running)
    print(
        f"signcheck matrix: interrupted: stopping the runs of Kyverno {names}; each removes its "
        f"environment (up to {STOP_GRACE_SECONDS:.0f} s; Ctrl-C again to kill them now)",
        file=sys.stderr,
        flush=True,
    )
    for child in running:
        _signal(child, signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    try:
        while any(c.proc.poll() is None for c in running) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        pass
    left = [c for c in running if c.proc.poll() is None]
    for child in left:
        _signal(child, signal.SIGKILL)
        child.proc.wait()
    if left:
        print(
            "signcheck matrix: killed the runs of Kyverno "
            f"{', '.join(c.version for c in left)}; `signcheck cleanup` removes what they left",
            file=sys.stderr,
            flush=True,
        )


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
