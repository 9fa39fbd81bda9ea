"""Several whole runs of the suite at once, each a `pytest tests` of its own.

What `signcheck matrix` (one run per Kyverno version) and `signcheck fleet` (one run per
cluster) share: at most `jobs` runs at a time, each in a session of its own with its output in
its reports directory's `pytest.log`, one line printed when each starts and ends, and an
interrupt passed on to each running run exactly once, with time to remove what it created.
"""

from __future__ import annotations

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
from signcheck.report.compare import RunResult

POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 60.0
"""After Ctrl-C: how long each run gets to remove its environment before it is killed."""
REPORT_FILES = ("summary.json", "report.html", "junit.xml")


@dataclass(frozen=True)
class Planned:
    label: str
    """The run's name in the comparison (a Kyverno version, a cluster)."""
    title: str
    """How the command's lines name it ("Kyverno v1.19.1", "cluster prod-a")."""
    reports_dir: Path
    args: tuple[str, ...]
    """pytest's arguments after `tests`, `--signcheck-reports` included."""


@dataclass
class Child:
    planned: Planned
    proc: subprocess.Popen[bytes]
    log: Path
    started: float


def run_all(planned: list[Planned], jobs: int, prog: str) -> list[RunResult]:
    """Every planned run, at most `jobs` at once, in the order given; on Ctrl-C (or SIGTERM)
    each running child is interrupted like a terminal Ctrl-C and given time to clean up."""
    pending = list(planned)
    running: list[Child] = []
    done: dict[str, RunResult] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                started = start(pending.pop(0), prog)
                if isinstance(started, RunResult):
                    done[started.label] = started
                else:
                    running.append(started)
            time.sleep(POLL_SECONDS)
            for child in list(running):
                code = child.proc.poll()
                if code is not None:
                    running.remove(child)
                    done[child.planned.label] = finish(child, code, prog)
    except KeyboardInterrupt:
        stop(running, prog)
        raise
    return [done[p.label] for p in planned]


def start(plan: Planned, prog: str) -> Child | RunResult:
    plan.reports_dir.mkdir(parents=True, exist_ok=True)
    # An earlier run's files would be read as this run's if this one writes none.
    for name in REPORT_FILES:
        (plan.reports_dir / name).unlink(missing_ok=True)
    log = plan.reports_dir / "pytest.log"
    # Concurrent runs in one checkout would race on .pytest_cache.
    argv = [sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider", *plan.args]
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
        print(f"{prog}: {plan.title} could not start: {err}", flush=True)
        return RunResult(plan.label, plan.reports_dir, None, f"could not start pytest: {err}")
    print(f"{prog}: {plan.title} started (log: {log})", flush=True)
    return Child(plan, proc, log, time.monotonic())


def _interrupt_when_orphaned() -> None:
    """In the child, before pytest starts: when the command dies without passing on an
    interrupt (killed, or a closed pipe on its output), the kernel sends the run SIGINT, so
    it stops and removes what it created instead of running on unowned (Linux prctl
    PR_SET_PDEATHSIG; elsewhere a no-op)."""
    # A command started in the background of a non-interactive shell has SIGINT ignored, and
    # a Python that starts with it ignored never raises KeyboardInterrupt: the run must take
    # the interrupt this command passes on.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT)
    except (OSError, AttributeError):
        pass


PR_SET_PDEATHSIG = 1


def finish(child: Child, code: int, prog: str) -> RunResult:
    plan = child.planned
    seconds = round(time.monotonic() - child.started)
    sentence = verdict_sentence(plan.reports_dir / "summary.json")
    error = None
    if sentence is None:
        ended = f"killed by signal {-code}" if code < 0 else f"exited {code}"
        error = f"{ended} without a summary.json"
        if last := last_log_line(child.log):
            error += f"; last log line: {last}"
        sentence = error
    print(f"{prog}: {plan.title} done in {seconds} s: {sentence} (exit {code})", flush=True)
    return RunResult(plan.label, plan.reports_dir, code, error)


def verdict_sentence(path: Path) -> str | None:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        sentence = data["verdict"]["sentence"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return redact.redact(str(sentence)) if sentence else None


def last_log_line(log: Path) -> str:
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - 16384))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    last = redact.redact(lines[-1]) if lines else ""
    return last[:200]


def _signal(child: Child, sig: signal.Signals) -> None:
    # The child's process group, as a terminal would: pytest-xdist's workers are in it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.proc.pid, sig)


def stop(running: list[Child], prog: str) -> None:
    if not running:
        return
    names = ", ".join(c.planned.title for c in running)
    print(
        f"{prog}: interrupted: stopping the runs of {names}; each removes what it created "
        f"(up to {STOP_GRACE_SECONDS:.0f} s; Ctrl-C again to kill them now)",
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
            f"{prog}: killed the runs of {', '.join(c.planned.title for c in left)}; "
            "`signcheck cleanup` removes what they left",
            file=sys.stderr,
            flush=True,
        )


def pytest_args(raw: list[str], owned: tuple[str, ...], prog: str, instead: str) -> list[str]:
    """The arguments after `--`, refusing the options the command sets for each run."""
    args = raw[1:] if raw[:1] == ["--"] else list(raw)
    for arg in args:
        for option in owned:
            if arg == option or arg.startswith(option + "="):
                raise ConfigError(
                    f"{option} is set by {prog} for each run: leave it out of the pytest "
                    f"arguments ({instead})"
                )
    return args


def default_jobs() -> int:
    # Each run boots (or drives) a Kubernetes environment and signs images: two cores each.
    return max(1, (os.cpu_count() or 1) // 2)
