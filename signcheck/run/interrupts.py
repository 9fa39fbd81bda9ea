"""Interrupts during a run: SIGTERM ends it like Ctrl-C (so it tears down), and one Ctrl-C
during the removal of a run does not abandon it."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any


@contextlib.contextmanager
def finishing(announce: Any = None) -> Iterator[None]:
    """Let the removal of a run finish through one Ctrl-C: the first SIGINT only says that
    cleanup is under way, a second one interrupts it (the next run removes the rest)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses: list[float] = []

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        presses.append(time.monotonic())
        if len(presses) > 1:
            raise KeyboardInterrupt
        if announce is not None:
            announce(
                "signcheck: removing what this run created; Ctrl-C again to abandon it "
                "(the next run or `signcheck cleanup` removes the rest)"
            )

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def sigterm_interrupts() -> Callable[[], None]:
    """Make SIGTERM (CI timeouts, `kill`) end the run like Ctrl-C, so it tears down; the
    default action would kill the process with everything left behind. Returns a function
    that puts the previous handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return lambda: None

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # Only once: a second SIGTERM during teardown falls back to the default action.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore
