"""The ServiceAccount cache's answer on the admission path: the store first; on a miss a live GET
[ours: on by default], then the grace period for the watch."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from webhook.core.records import Identity
from webhook.sources.store import IdentitySource, Key

log = logging.getLogger("irsa_webhook.cache")

LiveGet = Callable[[str, str], "Identity | bool | None"]

# Threads doing live GETs: their own pool, so a hanging API server can hold these and nothing else.
LOOKUP_THREADS = 8
# One live GET answers within this (its own 1 s timeout, plus scheduling); later means "could not ask".
LIVE_GET_DEADLINE = 1.1
# The whole miss path (live GET, then the grace period) ends within this. The shipped webhook
# configuration gives kube-apiserver's call 10 s (timeoutSeconds); the answer must be well inside it.
SLOW_PATH_BUDGET = 4.0


class Resolver:
    """Cache first; on a miss a live GET [ours: on by default], then the grace period for the watch.

    The miss path (:meth:`resolve_slow`) runs on the event loop: the blocking GET in a small pool of
    its own, the wait for the watch as a future (no thread). Concurrent misses for one ServiceAccount
    share one resolution (one GET), and every miss ends within ``SLOW_PATH_BUDGET``.
    """

    def __init__(
        self,
        store: IdentitySource,
        live_get: LiveGet | None = None,
        grace: float = 0.0,
        *,
        lookup_threads: int = LOOKUP_THREADS,
    ) -> None:
        self.store = store
        self.live_get = live_get
        self.grace = max(0.0, grace)
        if self.grace > SLOW_PATH_BUDGET:
            log.warning(
                "service-account-lookup-grace-period %.1fs is longer than a cache miss may take; waiting at most %.1fs",
                self.grace,
                SLOW_PATH_BUDGET,
            )
        self._lookup_threads = lookup_threads
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._inflight: dict[Key, asyncio.Task[Identity | None]] = {}

    def cached(self, namespace: str, name: str) -> Identity | None:
        return self.store.get(namespace, name)

    async def resolve_slow(self, namespace: str, name: str) -> Identity | None:
        """The miss path: live GET, then the grace period; concurrent calls for one key share it."""
        key = (namespace, name)
        loop = asyncio.get_running_loop()
        task = self._inflight.get(key)
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._resolve(namespace, name))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # shield: one caller giving up (its client went away) must not cancel the others' answer.
        return await asyncio.shield(task)

    def close(self) -> None:
        """Stop the lookup threads (pending lookups are dropped; a running GET ends on its timeout)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _forget(self, key: Key, task: asyncio.Task[Identity | None]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]

    async def _resolve(self, namespace: str, name: str) -> Identity | None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        if self.live_get is not None:
            answer = await self._live(namespace, name)
            if answer is not False:  # the API server answered: found, or definitely not found
                return answer if isinstance(answer, Identity) else None
        wait = min(self.grace, SLOW_PATH_BUDGET - (loop.time() - started))
        if wait > 0:
            return await self.store.wait_for_async(namespace, name, wait)
        return self.store.get(namespace, name)

    async def _live(self, namespace: str, name: str) -> Identity | bool | None:
        from webhook.observe import metrics  # here, not at import: the offline `mutate` command needs none

        live_get = self.live_get
        assert live_get is not None
        deadline = time.monotonic() + LIVE_GET_DEADLINE

        def lookup() -> Identity | bool | None:
            if time.monotonic() >= deadline:  # waited for a thread until nobody needs the answer
                metrics.LIVE_LOOKUPS.labels("deadline").inc()
                return False
            return live_get(namespace, name)

        future = asyncio.get_running_loop().run_in_executor(self._executor(), lookup)
        try:
            return await asyncio.wait_for(future, LIVE_GET_DEADLINE)
        except TimeoutError:
            log.warning("live GET of serviceaccount %s/%s: no answer within %.1fs", namespace, name, LIVE_GET_DEADLINE)
            return False

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._lookup_threads, thread_name_prefix="sa-lookup")
            return self._pool
