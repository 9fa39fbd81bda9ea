"""The one wait loop: a deadline, a poll interval with backoff, transient errors, the last
observation, and an account of the time spent waiting.

A probe returns a result (done), raises `NotYet` with what it saw, or raises one of the
`transient` errors (a refused connection while a server boots). Anything else stops the wait
at once: a process that exited will never become ready. On timeout the error names what was
awaited, where, the limit and the last observation (never a bare "timed out").

Polling starts fast and backs off to `interval`: most waits here end within a few hundred
milliseconds, and a fixed interval would round each of them up. Every wait adds its duration
to `waited_seconds()`, so a run can report how much of its wall time was waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import tenacity

from signcheck.errors import EnvironmentNotReady

T = TypeVar("T")

#: Errors that mean "not up yet" for network probes.
TRANSIENT: tuple[type[BaseException], ...] = (OSError, TimeoutError)

FIRST_INTERVAL = 0.02
BACKOFF = 1.5

_lock = threading.Lock()
_waited = 0.0


class NotYet(Exception):
    """Raised by a probe: not ready, and here is what was observed."""


def waited_seconds() -> float:
    """Total seconds this process has spent inside waits (threads added up)."""
    with _lock:
        return _waited


def _account(seconds: float) -> None:
    global _waited
    with _lock:
        _waited += seconds


def wait_for(
    what: str,
    probe: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.1,
    where: str = "",
    transient: tuple[type[BaseException], ...] = TRANSIENT,
    backoff: float = BACKOFF,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    start = clock()
    deadline = start + timeout
    # tenacity does the retrying; this layer keeps the deadline on our clock (so a pause is
    # cut short by it), the message with the last observation, and the waiting-time account.
    growing = tenacity.wait_exponential(
        multiplier=min(FIRST_INTERVAL, interval), exp_base=backoff, max=interval
    )

    def pause(state: tenacity.RetryCallState) -> float:
        return max(0.0, min(growing(state), deadline - clock()))

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((NotYet, *transient)),
        stop=lambda state: clock() >= deadline,
        wait=pause,
        sleep=sleep,
        reraise=False,
    )
    try:
        return retrying(probe)
    except tenacity.RetryError as gave_up:
        attempt = gave_up.last_attempt
        err = attempt.exception()
        last = (
            (str(err) or "not ready") if isinstance(err, NotYet) else f"{type(err).__name__}: {err}"
        )
        attempts = attempt.attempt_number
    finally:
        _account(clock() - start)
    place = f" at {where}" if where else ""
    raise EnvironmentNotReady(
        f"timed out after {timeout:g}s waiting for {what}{place}",
        f"attempts: {attempts}\nlast observation: {last}",
    )


def until(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float = 0.25,
    transient: tuple[type[BaseException], ...] = (),
    describe: Callable[[], str] | None = None,
    backoff: float = BACKOFF,
    max_interval: float | None = None,
) -> T:
    """`wait_for` for probes that answer None or False for "not yet"; `describe` may add
    what the caller last saw (a status dump) to the timeout message.

    Polling always backs off (see the module) by `backoff` per attempt (default 1.5);
    `max_interval`, where given, is the cap the pauses grow to instead of `interval`.
    """
    if max_interval is not None:
        interval = max(interval, max_interval)

    def check() -> T:
        result = probe()
        if result is None or result is False:
            raise NotYet(f"probe returned {result!r}")
        return result

    try:
        return wait_for(
            what,
            check,
            timeout=timeout,
            interval=interval,
            transient=transient,
            backoff=backoff,
        )
    except EnvironmentNotReady as err:
        if describe is not None:
            attempts = err.details.splitlines()[0]
            err.details = f"{attempts}\nlast observed: {describe()}"
        raise
