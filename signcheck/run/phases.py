"""Wall time of the run's phases (boot, images, signing, ...), merged across the processes of
one run (xdist workers and the owner) into `phases.json` under the run directory."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from filelock import FileLock

from signcheck.run.shared import write_json

P = ParamSpec("P")
T = TypeVar("T")


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
            write_json(self.run_dir / "phases.json", data)

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
