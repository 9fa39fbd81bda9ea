"""ManagedProcess with bash scripts as binaries: ready, exited early, never ready, stubborn."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from signcheck.errors import EnvironmentNotReady
from signcheck.localenv.process import ManagedProcess, is_alive, proc_start_time, terminate
from signcheck.wait import NotYet

FakeBinary = Callable[[str, str], Path]


def file_probe(path: Path) -> Callable[[], bool]:
    def probe() -> bool:
        if not path.exists():
            raise NotYet(f"{path} does not exist yet")
        return True

    return probe


def test_starts_waits_for_ready_and_stops(fake_binary: FakeBinary, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    binary = fake_binary(
        "server",
        f"""
        echo "starting with $*"
        sleep 0.2
        touch {ready}
        exec sleep 30
        """,
    )
    proc = ManagedProcess(
        "server",
        [binary, "--port=1"],
        log_path=tmp_path / "logs" / "server.log",
        ready=file_probe(ready),
        ready_timeout=5,
    )
    proc.start()
    assert proc.alive and proc.pid is not None
    record = proc.record()
    assert record.start_time == proc_start_time(proc.pid)
    assert "starting with --port=1" in proc.log_tail()
    assert proc.stop() == "stopped"
    assert not is_alive(record.pid, record.start_time)
    # Stop is idempotent.
    assert proc.stop() == "not running"


def test_exit_before_ready_names_service_command_code_and_log(
    fake_binary: FakeBinary, tmp_path: Path
) -> None:
    binary = fake_binary(
        "crasher",
        """
        for i in $(seq 1 50); do echo "line $i"; done
        echo "fatal: bad flag" >&2
        exit 3
        """,
    )
    proc = ManagedProcess(
        "crasher",
        [binary, "--bad"],
        log_path=tmp_path / "crasher.log",
        ready=lambda: False,
        ready_timeout=10,
    )
    started = time.monotonic()
    with pytest.raises(EnvironmentNotReady) as info:
        proc.start()
    # The exit is noticed at once, not after the 10s deadline.
    assert time.monotonic() - started < 5
    err = info.value
    assert err.message == "crasher failed to start: it exited with code 3"
    assert f"command: {binary} --bad" in err.details
    assert "fatal: bad flag" in err.details and "line 50" in err.details
    # Only the last 30 lines of the log.
    assert "line 20\n" not in err.details and "line 22" in err.details


@pytest.mark.parametrize(
    ("name", "timeout_name", "other"),
    [("sleeper", "service_ready", "kyverno_ready"), ("kyverno", "kyverno_ready", "service_ready")],
    ids=["default", "kyverno"],
)
def test_never_ready_times_out_with_last_observation_and_is_stopped(
    fake_binary: FakeBinary, tmp_path: Path, name: str, timeout_name: str, other: str
) -> None:
    # The message names the Timeouts field (and variable) that governs this service's start:
    # Kyverno's is kyverno_ready, not service_ready.
    binary = fake_binary(name, "echo waiting forever; exec sleep 30\n")
    kwargs = {} if timeout_name == "service_ready" else {"ready_timeout_name": timeout_name}
    proc = ManagedProcess(
        name,
        [binary],
        log_path=tmp_path / f"{name}.log",
        ready=file_probe(tmp_path / "never"),
        ready_timeout=0.5,
        poll_interval=0.05,
        **kwargs,
    )
    with pytest.raises(EnvironmentNotReady) as info:
        proc.start()
    err = info.value
    assert f"{name} failed to start: it was not ready within 0.5s" in err.message
    expected = f"(timeouts.{timeout_name}, SIGNCHECK_TIMEOUT_{timeout_name.upper()})"
    assert expected in err.message
    assert other not in err.message
    assert "last observation:" in err.details and "does not exist yet" in err.details
    assert "waiting forever" in err.details
    assert not proc.alive


def test_transient_probe_errors_are_retried(fake_binary: FakeBinary, tmp_path: Path) -> None:
    binary = fake_binary("svc", "exec sleep 30\n")
    calls = []

    def probe() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("connection refused")
        return True

    proc = ManagedProcess(
        "svc", [binary], log_path=tmp_path / "svc.log", ready=probe, poll_interval=0.01
    )
    try:
        proc.start()
        assert len(calls) == 3
    finally:
        proc.stop()


def test_sigterm_ignored_means_sigkill_after_stop_timeout(
    fake_binary: FakeBinary, tmp_path: Path
) -> None:
    armed = tmp_path / "armed"
    binary = fake_binary("stubborn", f"trap '' TERM\ntouch {armed}\nwhile sleep 0.05; do :; done\n")
    proc = ManagedProcess(
        "stubborn",
        [binary],
        log_path=tmp_path / "s.log",
        stop_timeout=0.3,
        ready=file_probe(armed),
    )
    proc.start()
    started = time.monotonic()
    assert proc.stop() == "killed"
    assert time.monotonic() - started < 3


def test_stop_takes_the_whole_process_group(fake_binary: FakeBinary, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    binary = fake_binary("parent", f"sleep 30 & echo $! > {pidfile}\nwait\n")
    proc = ManagedProcess(
        "parent", [binary], log_path=tmp_path / "p.log", ready=file_probe(pidfile)
    )
    proc.start()
    time.sleep(0.05)
    child = int(pidfile.read_text())
    assert is_alive(child)
    proc.stop()
    deadline = time.monotonic() + 2
    while is_alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not is_alive(child)


def test_missing_binary_is_a_start_failure(tmp_path: Path) -> None:
    proc = ManagedProcess("ghost", [tmp_path / "nope"], log_path=tmp_path / "g.log")
    with pytest.raises(EnvironmentNotReady, match="ghost could not be started"):
        proc.start()
    assert proc.stop() == "never started"


def test_terminate_by_pid_checks_identity(fake_binary: FakeBinary, tmp_path: Path) -> None:
    binary = fake_binary("svc", "exec sleep 30\n")
    proc = ManagedProcess("svc", [binary], log_path=tmp_path / "svc.log")
    proc.start()
    rec = proc.record()
    try:
        # A recycled pid (other start time) is never signalled.
        assert terminate(rec.pid, rec.start_time + 1, timeout=0.5) == "not running"
        assert proc.alive
        assert terminate(rec.pid, rec.start_time, timeout=2) == "stopped"
        proc._proc.wait(2)  # type: ignore[union-attr]  # reap our own child
        assert not is_alive(rec.pid)
    finally:
        proc.stop()


def test_own_process_is_alive() -> None:
    assert is_alive(os.getpid(), proc_start_time(os.getpid()))
    assert not is_alive(os.getpid(), 1)
