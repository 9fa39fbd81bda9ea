"""Progress for long work: one live line on a terminal, a heartbeat line in CI logs.

A cold build runs for many minutes; whichever way the output goes, it must never look hung.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO


def fmt_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """`with Progress("kyverno v1.19.1") as p: p.step("compile kyverno"); p.activity(pkg)`."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        heartbeat: float = 30.0,
        tick: float = 1.0,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.heartbeat = heartbeat
        self.tick = tick
        self.started = time.monotonic()
        self._step = ""
        self._step_started = self.started
        self._activity = ""
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_beat = self.started

    def __enter__(self) -> Progress:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        outcome = "failed" if exc_type else "done"
        self._emit(f"[{self.label}] {outcome} in {fmt_elapsed(time.monotonic() - self.started)}")

    def step(self, name: str) -> None:
        with self._lock:
            self._step, self._activity, self._count = name, "", 0
            self._step_started = time.monotonic()
        if not self.live:
            self._emit(f"[{self.label}] {name} ...")
            self._last_beat = time.monotonic()

    def activity(self, text: str) -> None:
        with self._lock:
            self._activity = text
            self._count += 1

    def _line(self) -> str:
        with self._lock:
            now = time.monotonic()
            parts = [f"[{self.label}] {self._step}", fmt_elapsed(now - self._step_started)]
            if self._count:
                parts.append(f"{self._count} lines")
            if self._activity:
                parts.append(self._activity[-60:])
            return " · ".join(parts)

    def _emit(self, text: str) -> None:
        if self.live:
            self.stream.write("\r\x1b[2K" + text + "\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            if self.live:
                self.stream.write("\r\x1b[2K" + self._line())
                self.stream.flush()
            elif time.monotonic() - self._last_beat >= self.heartbeat:
                self._last_beat = time.monotonic()
                self._emit(self._line() + " (still working)")
