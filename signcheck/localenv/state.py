"""The state of a run on disk, so a later command can inspect or remove it.

Each run directory holds `state.json` (services with pid and start time, ports, info) and
`owner.lock`, which the process that owns the environment keeps locked for its lifetime.
The kernel drops the lock when that process dies, however it dies, so "can I take the
lock?" is an exact test for an abandoned run, and taking it makes the taker the only
one cleaning up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from signcheck.localenv.process import ProcessRecord, is_alive, proc_start_time, terminate

STATE_FILE = "state.json"
LOCK_FILE = "owner.lock"


@dataclass
class EnvState:
    """One local environment as `state.json` records it: its services, ports and info."""

    run_id: str
    run_dir: Path
    owner_pid: int
    owner_kind: str
    phase: str = "starting"
    services: list[ProcessRecord] = field(default_factory=list)
    info: dict[str, Any] | None = None
    error: str | None = None
    keep: bool = False
    owner_start_time: int | None = None

    @property
    def path(self) -> Path:
        return self.run_dir / STATE_FILE

    def save(self) -> None:
        data = {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "owner_pid": self.owner_pid,
            "owner_start_time": self.owner_start_time,
            "owner_kind": self.owner_kind,
            "phase": self.phase,
            "keep": self.keep,
            "services": [s.as_dict() for s in self.services],
            "info": self.info,
            "error": self.error,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, run_dir: Path) -> EnvState:
        raw = json.loads((run_dir / STATE_FILE).read_text())
        return cls(
            run_id=raw["run_id"],
            run_dir=Path(raw["run_dir"]),
            owner_pid=int(raw["owner_pid"]),
            owner_start_time=raw.get("owner_start_time"),
            owner_kind=raw.get("owner_kind", "context"),
            phase=raw.get("phase", "unknown"),
            keep=bool(raw.get("keep", False)),
            services=[ProcessRecord.from_dict(s) for s in raw.get("services", [])],
            info=raw.get("info"),
            error=raw.get("error"),
        )

    def record(self, rec: ProcessRecord) -> None:
        self.services = [s for s in self.services if s.name != rec.name] + [rec]
        self.save()

    def service_status(self) -> list[tuple[ProcessRecord, bool]]:
        return [(s, is_alive(s.pid, s.start_time)) for s in self.services]

    def owner_alive(self) -> bool:
        return is_alive(self.owner_pid, self.owner_start_time)


class OwnerLock:
    """The owner's lock on a run directory; held for as long as the environment lives."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._fh: IO[str] | None = None

    def acquire(self) -> bool:
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def new_state(run_id: str, run_dir: Path, owner_kind: str, keep: bool) -> EnvState:
    pid = os.getpid()
    return EnvState(
        run_id=run_id,
        run_dir=run_dir,
        owner_pid=pid,
        owner_start_time=proc_start_time(pid),
        owner_kind=owner_kind,
        keep=keep,
    )


def list_runs(root: Path) -> list[EnvState]:
    """Every run under `root` with a readable state file, oldest first."""
    runs: list[EnvState] = []
    if not root.is_dir():
        return runs
    for child in root.iterdir():
        if (child / STATE_FILE).is_file():
            with contextlib.suppress(OSError, ValueError, KeyError):
                runs.append(EnvState.load(child))
    # Run ids start with a timestamp: sorting by id is sorting by start.
    return sorted(runs, key=lambda r: r.run_id)


@contextlib.contextmanager
def abandoned(run_dir: Path) -> Iterator[bool]:
    """Yields True, holding the owner lock, when the run's owner is gone."""
    lock = OwnerLock(run_dir)
    got = lock.acquire()
    try:
        yield got
    finally:
        lock.release()


def stop_services(state: EnvState, timeout: float) -> list[str]:
    """Stop recorded services by pid, in reverse start order. Returns one line per service."""
    lines = []
    for rec in reversed(state.services):
        outcome = terminate(rec.pid, rec.start_time, timeout)
        lines.append(f"{rec.name} (pid {rec.pid}): {outcome}")
    return lines


def remove_run_dir(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
