"""Create-once state shared by every process of one run (pytest-xdist workers and the
controller): a file lock and a JSON file per resource under the run directory.

The first process to take the lock creates the resource and writes its JSON; every later one
reads the JSON. A creation that failed is remembered too, so the other workers fail with the
same error at once instead of each trying (and timing out) again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from filelock import FileLock, Timeout

from signcheck import redact
from signcheck.errors import EnvironmentNotReady, SigncheckError

P = ParamSpec("P")
T = TypeVar("T")


def once(
    run_dir: Path,
    name: str,
    create: Callable[[], dict[str, Any]],
    timeout: float,
) -> dict[str, Any]:
    """The JSON state called `name` of this run, created by `create` if nobody has yet."""
    path = run_dir / f"{name}.json"
    try:
        with FileLock(str(run_dir / f".{name}.lock"), timeout=timeout):
            if path.is_file():
                data: dict[str, Any] = json.loads(path.read_text())
                if "error" in data:
                    raise SigncheckError(
                        f"{name} could not be created (by another worker): {data['error']}",
                        data.get("details", ""),
                    )
                return data
            try:
                data = create()
            except SigncheckError as err:
                _write(
                    path,
                    {"error": redact.redact(err.message), "details": redact.redact(err.details)},
                )
                raise
            except Exception as err:
                _write(path, {"error": redact.redact(f"{type(err).__name__}: {err}")})
                raise
            _write(path, data)
            return data
    except Timeout as err:
        raise EnvironmentNotReady(
            f"timed out after {timeout:g}s waiting for another worker to create {name}",
            f"lock file: {run_dir / f'.{name}.lock'}",
        ) from err


def read(run_dir: Path, name: str) -> dict[str, Any] | None:
    path = run_dir / f"{name}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(redact.redact_obj(data), indent=2, default=str))
    tmp.replace(path)


class Phases:
    """Wall time of the run's phases, merged across processes into `phases.json`."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    @contextmanager
    def time(self, phase: str) -> Iterator[None]:
        started, wall = time.monotonic(), time.time()
        try:
            yield
        finally:
            self.add(phase, time.monotonic() - started, (wall, time.time()))

    def timed(self, phase: str, fn: Callable[P, T]) -> Callable[P, T]:
        """`fn`, its calls counted to `phase` (for work handed to a thread pool)."""

        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            with self.time(phase):
                return fn(*args, **kwargs)

        return run

    def add(self, phase: str, seconds: float, interval: tuple[float, float] | None = None) -> None:
        """Add to a phase's total; `interval` (wall-clock start, end) lets the test phase
        subtract session setup that ran inside the first test's setup."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.run_dir / ".phases.lock"), timeout=30):
            data = self._load()
            data["totals"][phase] = round(data["totals"].get(phase, 0.0) + seconds, 3)
            if interval:
                data["intervals"].append([phase, *interval])
            _write(self.run_dir / "phases.json", data)

    def _load(self) -> dict[str, Any]:
        path = self.run_dir / "phases.json"
        if path.is_file():
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        return {"totals": {}, "intervals": []}

    def read(self) -> dict[str, float]:
        return dict(self._load()["totals"])

    def overlap(self, start: float, end: float) -> float:
        """Seconds of recorded phases that fell inside the wall-clock window [start, end]."""
        intervals: list[list[Any]] = self._load()["intervals"]
        return sum(max(0.0, min(end, float(e)) - max(start, float(s))) for _, s, e in intervals)
