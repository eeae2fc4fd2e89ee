"""The one bounded wait: poll until something holds, or fail saying what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A bounded wait ran out; the message says what was awaited and the last observation."""


class GiveUp(Exception):
    """Raised by a probe when what it waits for can no longer happen (the process it polls exited):
    the wait ends at once with this exception instead of polling until its timeout."""


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float = 5.0,
    what: str = "the condition",
    interval: float = 0.2,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None/False, and return that; fail with
    WaitTimeout after ``timeout`` seconds.

    An exception from ``probe`` counts as "not yet" (the last one is reported), so a probe may simply
    try the thing it waits for; GiveUp ends the wait at once. Polls start 10 ms apart and back off to
    ``interval``, so a quick condition is seen at once and a slow one is not hammered.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    pause = min(0.01, interval)
    while True:
        try:
            result = probe()
        except GiveUp:
            raise
        except Exception as exc:
            last = exc
        else:
            if result is not None and result is not False:
                return result
            last = result
        if time.monotonic() >= deadline:
            extra = f"\n{on_timeout()}" if on_timeout else ""
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}{extra}")
        time.sleep(pause)
        pause = min(pause * 2, interval)
