"""The one wait loop of the local environment.

A probe either returns a result (done), raises `NotYet` with what it saw, or raises one of
the transient errors (a refused connection while a server boots). Anything else stops the
wait at once: a process that exited will never become ready, so waiting on is pointless.
On timeout the error names what was awaited, where, the limit and the last observation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from signcheck.errors import EnvironmentNotReady

T = TypeVar("T")

#: Errors that mean "not up yet" for network probes.
TRANSIENT: tuple[type[BaseException], ...] = (OSError, TimeoutError)


class NotYet(Exception):
    """Raised by a probe: not ready, and here is what was observed."""


def wait_for(
    what: str,
    probe: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.1,
    where: str = "",
    transient: tuple[type[BaseException], ...] = TRANSIENT,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    start = clock()
    deadline = start + timeout
    last = "nothing observed yet"
    attempts = 0
    while attempts == 0 or clock() <= deadline:
        attempts += 1
        try:
            return probe()
        except NotYet as seen:
            last = str(seen) or "not ready"
        except transient as err:
            last = f"{type(err).__name__}: {err}"
        remaining = deadline - clock()
        if remaining <= 0:
            break
        sleep(min(interval, remaining))
    place = f" at {where}" if where else ""
    raise EnvironmentNotReady(
        f"timed out after {timeout:g}s waiting for {what}{place}",
        f"attempts: {attempts}\nlast observation: {last}",
    )
