"""One process abstraction for every service of the local environment.

`ManagedProcess` starts a binary in its own session (so it outlives the command that
started it and can be stopped as a group), sends its output to one log file, races its
readiness probe against its exit and a deadline, and stops with SIGTERM, a wait, then
SIGKILL. Stop is idempotent. The functions below it do the same by pid for processes a
previous command started, checking the pid still names the same process (pids are reused).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from signcheck.errors import EnvironmentNotReady, tail_lines
from signcheck.wait import TRANSIENT, NotYet, wait_for

LOG_TAIL_LINES = 30

Probe = Callable[[], object]


class ProcessExited(Exception):
    def __init__(self, returncode: int) -> None:
        super().__init__(f"exited with code {returncode}")
        self.returncode = returncode


@dataclass(frozen=True)
class ProcessRecord:
    """What another command needs to find, check and stop a service: kept in the state file."""

    name: str
    pid: int
    start_time: int
    argv: tuple[str, ...]
    log: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "start_time": self.start_time,
            "argv": list(self.argv),
            "log": self.log,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            name=str(raw["name"]),
            pid=int(raw["pid"]),
            start_time=int(raw["start_time"]),
            argv=tuple(raw.get("argv", ())),
            log=str(raw.get("log", "")),
        )


def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    rest = stat.rsplit(")", 1)[1].split()
    if rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def is_alive(pid: int, start_time: int | None = None) -> bool:
    started = proc_start_time(pid)
    return started is not None and (start_time is None or started == start_time)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group when `pid` leads one (our services do), else the process."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
            return
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def terminate(pid: int, start_time: int | None, timeout: float, interval: float = 0.05) -> str:
    """Stop a process that may not be our child. Returns how it ended, for the report."""
    if not is_alive(pid, start_time):
        return "not running"

    def gone() -> bool:
        if is_alive(pid, start_time):
            raise NotYet(f"pid {pid} still running")
        return True

    _signal_group(pid, signal.SIGTERM)
    try:
        wait_for(f"pid {pid} to exit after SIGTERM", gone, timeout=timeout, interval=interval)
        return "stopped"
    except EnvironmentNotReady:
        _signal_group(pid, signal.SIGKILL)
    # SIGKILL cannot be refused; the wait only covers the kernel tearing the process down.
    with contextlib.suppress(EnvironmentNotReady):
        wait_for(f"pid {pid} to exit after SIGKILL", gone, timeout=2.0, interval=interval)
    return "killed"


class ManagedProcess:
    """`p = ManagedProcess("etcd", argv, log_path=..., ready=probe); p.start(); p.stop()`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        ready: Probe | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready_timeout: float = 60.0,
        ready_timeout_name: str = "service_ready",
        stop_timeout: float = 5.0,
        poll_interval: float = 0.1,
        transient: tuple[type[BaseException], ...] = TRANSIENT,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.ready = ready
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ready_timeout = ready_timeout
        # The `Timeouts` field that sets the limit, so an expired start names the variable
        # that stretches it (Kyverno's is kyverno_ready, not service_ready).
        self.ready_timeout_name = ready_timeout_name
        self.stop_timeout = stop_timeout
        self.poll_interval = poll_interval
        self.transient = transient
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._start_time: int | None = None

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def record(self) -> ProcessRecord:
        if self._proc is None or self._start_time is None:
            raise RuntimeError(f"{self.name} was never started")
        return ProcessRecord(
            self.name, self._proc.pid, self._start_time, tuple(self.argv), str(self.log_path)
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 64 * 1024))
                text = fh.read().decode(errors="replace")
        except OSError:
            return ""
        return tail_lines(text, lines)

    def spawn(self) -> None:
        """Start the process without waiting for it to be ready."""
        if self._proc is not None:
            raise RuntimeError(f"{self.name} was already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = {**os.environ, **self.env} if self.env is not None else None
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as err:
            self._log.close()
            raise EnvironmentNotReady(
                f"{self.name} could not be started: {err}", f"command: {self.command_line}"
            ) from err
        self._start_time = proc_start_time(self._proc.pid) or 0

    def wait_ready(self) -> None:
        """Race the readiness probe against the process exiting and the deadline."""
        proc = self._proc
        if proc is None:
            raise RuntimeError(f"{self.name} was never started")
        probe = self.ready

        def check() -> object:
            code = proc.poll()
            if code is not None:
                raise ProcessExited(code)
            if probe is None:
                return True
            result = probe()
            if not result:
                raise NotYet("probe returned false")
            return result

        try:
            wait_for(
                f"{self.name} to become ready",
                check,
                timeout=self.ready_timeout,
                interval=self.poll_interval,
                where=f"pid {proc.pid}",
                transient=self.transient,
            )
        except ProcessExited as exited:
            raise self._failure(f"exited with code {exited.returncode}", "") from None
        except EnvironmentNotReady as err:
            self.stop()
            name = self.ready_timeout_name
            raise self._failure(
                f"was not ready within {self.ready_timeout:g}s "
                f"(timeouts.{name}, SIGNCHECK_TIMEOUT_{name.upper()})",
                err.details,
            ) from None

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def _failure(self, how: str, observed: str) -> EnvironmentNotReady:
        parts = [f"command: {self.command_line}"]
        if observed:
            parts.append(observed)
        parts.append(f"log: {self.log_path}")
        tail = self.log_tail()
        parts.append(f"last {LOG_TAIL_LINES} log lines:\n{tail}" if tail else "log is empty")
        return EnvironmentNotReady(f"{self.name} failed to start: it {how}", "\n".join(parts))

    def stop(self, timeout: float | None = None) -> str:
        """SIGTERM the process group, wait, then SIGKILL (at once when `timeout` is 0). Safe
        to call again."""
        proc = self._proc
        if proc is None:
            return "never started"
        timeout = self.stop_timeout if timeout is None else timeout
        outcome = "not running"
        if proc.poll() is None and timeout <= 0:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            outcome = "killed"
        elif proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
                outcome = "stopped"
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
                outcome = "killed"
        # Children left in the group (none expected) must not outlive the service; the
        # group keeps the leader's pid as its id after the leader is gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        return outcome


def stop_together(procs: list[ManagedProcess]) -> list[str]:
    """Stop each at once (each has its own SIGTERM grace); the problems met, if any."""
    problems: list[str] = []
    if not procs:
        return problems

    def stop(p: ManagedProcess) -> None:
        try:
            p.stop()
        except Exception as err:
            problems.append(f"stopping {p.name} (pid {p.pid}): {err}")

    with ThreadPoolExecutor(max_workers=len(procs)) as pool:
        list(pool.map(stop, procs))
    return problems
