"""The one wait loop: a deadline, a poll interval, transient errors, the last observation.

Every wait in signcheck goes through `until`, so a timeout always says what it waited for,
where, for how long, and what it saw last (never a bare "timed out").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from signcheck.errors import EnvironmentNotReady

T = TypeVar("T")


def until(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float = 0.25,
    transient: tuple[type[BaseException], ...] = (),
    describe: Callable[[], str] | None = None,
) -> T:
    """Call `probe` until it returns something other than None or False, and return it.

    Exceptions of the `transient` types count as "not yet" and are kept as the last
    observation; any other exception propagates at once. `describe` may add what the
    caller last saw (e.g. a status dump) to the timeout message.
    """
    deadline = time.monotonic() + timeout
    last: str = "nothing observed yet"
    attempts = 0
    while True:
        attempts += 1
        try:
            result = probe()
        except transient as err:
            last = f"{type(err).__name__}: {err}"
        else:
            if result is not None and result is not False:
                return result
            last = f"probe returned {result!r}"
        if time.monotonic() >= deadline:
            seen = describe() if describe else last
            raise EnvironmentNotReady(
                f"timed out after {timeout:g}s waiting for {what}",
                f"attempts: {attempts}\nlast observed: {seen}",
            )
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
