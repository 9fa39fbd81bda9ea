"""A run's record on disk, held for its whole life: how a later process tells a crashed run
from a live one.

Every run of the suite owns a directory `<runs root>/suite/<run id>` (`signcheck.places`)
and holds an exclusive lock on its `owner.lock` for as long as it lives. The kernel drops
that lock when the process dies, however it dies, so "can I take the lock?" tells a crashed
run from a live one exactly, and taking it makes the taker the only one cleaning up. The
directory keeps what a later process needs to find the run's resources: `run.json` (target,
keep) and, once the target booted, `target.json` (kubeconfig, context, registry; never a
password).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signcheck.errors import ConfigError
from signcheck.localenv.state import OwnerLock, abandoned

META_FILE = "run.json"
TARGET_FILE = "target.json"
FINISHED = "finished"

CLAIM_GRACE = 300.0
"""Seconds after which a half-made claim (`.<run id>.*`, its creator gone) is removed."""


class RunClaim:
    """The owner's hold on its run directory, for the whole life of the run."""

    def __init__(self, run_dir: Path, lock: OwnerLock, meta: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self._lock = lock
        self.meta = meta

    @classmethod
    def create(cls, root: Path, run_id: str, **meta: Any) -> RunClaim:
        """Make `<root>/<run id>` already locked: the directory is built under a hidden name
        and renamed once the lock is held, so a reaper never sees it unlocked."""
        root.mkdir(parents=True, exist_ok=True)
        final = root / run_id
        if final.exists():
            raise ConfigError(f"run directory {final} already exists; run ids must be unique")
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=root))
        lock = OwnerLock(tmp)
        if not lock.acquire():  # pragma: no cover - nobody else knows the fresh name
            raise ConfigError(f"could not lock the new run directory {tmp}")
        data = {"run_id": run_id, "pid": os.getpid(), "started": time.time(), **meta}
        _write_json(tmp / META_FILE, data)
        # The lock belongs to the open file, not the path: it survives the rename.
        tmp.rename(final)
        return cls(final, lock, data)

    def mark(self, phase: str) -> None:
        if self.run_dir.is_dir():
            self.meta["phase"] = phase
            _write_json(self.run_dir / META_FILE, self.meta)

    def release(self) -> None:
        self._lock.release()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class RunRecord:
    """What a run left on disk for later processes: `run.json` and `target.json`."""

    run_id: str
    run_dir: Path
    meta: dict[str, Any]
    target: dict[str, Any] | None

    @property
    def target_name(self) -> str:
        if self.target and self.target.get("name"):
            return str(self.target["name"])
        return str(self.meta.get("target", "local"))

    @property
    def kept(self) -> bool:
        """Finished with --keep: its directory stays on purpose until removed by id."""
        return bool(self.meta.get("keep")) and self.meta.get("phase") == FINISHED


def read_run(run_dir: Path) -> RunRecord:
    return RunRecord(
        run_dir.name,
        run_dir,
        _read_json(run_dir / META_FILE) or {},
        _read_json(run_dir / TARGET_FILE),
    )


def is_abandoned(run_dir: Path) -> bool:
    with abandoned(run_dir) as gone:
        return gone


def stale_runs(root: Path, *, include_kept: bool = False) -> list[RunRecord]:
    """Runs under `root` whose owner is gone, oldest first (run ids sort by start)."""
    found: list[RunRecord] = []
    if not root.is_dir():
        return found
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        if is_abandoned(child):
            info = read_run(child)
            if include_kept or not info.kept:
                found.append(info)
    return found


def half_claims(root: Path) -> list[Path]:
    """Claims whose creator died before the rename (the hidden names of `RunClaim.create`)."""
    if not root.is_dir():
        return []
    old = time.time() - CLAIM_GRACE
    return [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(".") and p.stat().st_mtime < old and is_abandoned(p)
    ]


def reap_half_claims(root: Path) -> list[str]:
    lines = []
    for half in half_claims(root):
        shutil.rmtree(half, ignore_errors=True)
        lines.append(f"removed half-created run dir {half}")
    return lines
