"""The controller's work queue: object names, each due at one time, handed out one at a time.

- **De-duplicated:** a name is in the queue once, due at the earliest of the times it was added for
  (an event now beats a resync in an hour); adding it again changes nothing else.
- **Never twice at once:** a name being processed is not handed out again until :meth:`WorkQueue.done`;
  if it was added meanwhile, it is due again after that (the change that came in is not lost).
- **Delays:** :meth:`WorkQueue.add_after` is how a resync or a retry is scheduled; :class:`Backoff`
  says how long a retry waits.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable


class WorkQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._due: dict[str, float] = {}  # name -> when it is due (the earliest asked for)
        self._heap: list[tuple[float, int, str]] = []  # (due, order, name); stale entries skipped
        self._order = itertools.count()
        self._processing: set[str] = set()
        self._shut = False
        self._cond = threading.Condition()

    def add(self, name: str) -> None:
        """Due now."""
        self.add_after(name, 0.0)

    def add_after(self, name: str, delay: float) -> None:
        """Due in ``delay`` seconds, unless it is already due sooner."""
        due = self._clock() + max(0.0, delay)
        with self._cond:
            if self._shut or self._due.get(name, float("inf")) <= due:
                return
            self._due[name] = due
            heapq.heappush(self._heap, (due, next(self._order), name))
            self._cond.notify()

    def forget(self, name: str) -> None:
        """Drop whatever is scheduled for ``name`` (the object is gone)."""
        with self._cond:
            self._due.pop(name, None)

    def get(self, timeout: float | None = None) -> str | None:
        """The next due name not being processed (now marked as processing), or None after
        ``timeout`` seconds or once shut down."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not self._shut:
                now = self._clock()
                name, wait = self._next(now)
                if name is not None:
                    del self._due[name]
                    self._processing.add(name)
                    return name
                if deadline is not None:
                    if now >= deadline:
                        return None
                    wait = min(wait, deadline - now) if wait is not None else deadline - now
                self._cond.wait(wait)
            return None

    def done(self, name: str) -> None:
        """Processing of ``name`` ended: if it was added meanwhile, it can be handed out again."""
        with self._cond:
            self._processing.discard(name)
            self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._shut = True
            self._cond.notify_all()

    def ready(self) -> int:
        """How many names are due now (the queue depth; those scheduled for later are not counted)."""
        now = self._clock()
        with self._cond:
            return sum(1 for due in self._due.values() if due <= now)

    def scheduled(self, name: str) -> float | None:
        """Seconds until ``name`` is due (0 if due now), None if it is not in the queue."""
        with self._cond:
            due = self._due.get(name)
        return None if due is None else max(0.0, due - self._clock())

    def _next(self, now: float) -> tuple[str | None, float | None]:
        """The name to hand out now, else (None, seconds until the heap's next due entry)."""
        deferred: list[tuple[float, int, str]] = []
        found: str | None = None
        wait: float | None = None
        while self._heap:
            due, order, name = self._heap[0]
            if self._due.get(name) != due:  # rescheduled sooner, forgotten, or handed out: stale
                heapq.heappop(self._heap)
                continue
            if due > now:
                wait = due - now
                break
            heapq.heappop(self._heap)
            if name in self._processing:
                deferred.append((due, order, name))  # handed out after done(); woken by it
                continue
            found = name
            break
        for entry in deferred:
            heapq.heappush(self._heap, entry)
        return found, wait


class Backoff:
    """Per-name exponential backoff: ``start`` seconds after the first failure, doubling up to ``cap``,
    each delay drawn at random between half and all of it, so that objects failing together (an AWS
    outage) do not retry together."""

    def __init__(self, start: float = 1.0, cap: float = 300.0) -> None:
        self._start = start
        self._cap = cap
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def next_delay(self, name: str) -> float:
        """Count one more failure of ``name``; the wait before its retry."""
        with self._lock:
            failures = self._failures.get(name, 0)
            self._failures[name] = failures + 1
        ceiling = min(self._cap, self._start * 2.0 ** min(failures, 32))
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto

    def failures(self, name: str) -> int:
        with self._lock:
            return self._failures.get(name, 0)

    def reset(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)
