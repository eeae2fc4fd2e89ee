"""ServiceAccount identities, looked up by (namespace, name).

The store keeps one small immutable :class:`~webhook.types.Identity` per ServiceAccount, parsed once
when the object is seen; nothing else of the object is kept. Sources fill it:

* :class:`webhook.watch.ServiceAccountWatcher` — cluster-wide list+watch (production);
* :func:`load_manifests` — ServiceAccount manifests on disk (``--service-accounts``, demos, tests);
* :class:`webhook.watch.LiveLookup` — a live GET on a cache miss, through :meth:`IdentityStore.offer`;
* tests write to it directly.

Readers never block on writers for long: every write happens under one lock, reads of a dict entry
are atomic in CPython and need none. Nothing waits on a thread: a request waiting for the watch to
deliver a ServiceAccount awaits a future that the writing thread resolves through its event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import yaml

from webhook.identity import parse_service_account
from webhook.settings import Settings
from webhook.types import Identity

log = logging.getLogger("irsa_webhook.cache")

Key = tuple[str, str]
_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Identity | None]"]


def newer(candidate: str, than: str) -> bool:
    """True if resourceVersion ``candidate`` is known to be later than ``than``.

    resourceVersions are opaque to clients, but every API server backed by etcd hands out its
    revision, an integer that only grows. When either side is not an integer the order is unknown:
    False, so the caller keeps what the watch said.
    """
    if not (candidate.isdigit() and than.isdigit() and candidate.isascii() and than.isascii()):
        return False
    # Revisions are at most 19 digits (int64); anything longer is not one, and int() on it is slow.
    if len(candidate) > 19 or len(than) > 19:
        return False
    return int(candidate) > int(than)


class IdentitySource(Protocol):
    """What the admission handler needs from a ServiceAccount cache."""

    @property
    def ready(self) -> bool: ...

    def get(self, namespace: str, name: str) -> Identity | None: ...

    async def wait_for_async(self, namespace: str, name: str, timeout: float) -> Identity | None: ...

    def __len__(self) -> int: ...


class IdentityStore:
    """The in-memory cache, also the in-memory implementation used by tests.

    Two kinds of writers:

    * the watch (``replace_all``, ``upsert``, ``delete``, ``advance``): it delivers every change in
      order, so what it says is applied as it comes, and the resourceVersion it has reached is kept;
    * a live GET (``offer``): its answer may be older than what the watch delivered while the GET was
      in flight, so it is applied only when it is newer than everything the watch said about that
      ServiceAccount (see :meth:`offer`).
    """

    def __init__(self) -> None:
        self._items: dict[Key, Identity] = {}
        self._lock = threading.Lock()
        self._waiters: dict[Key, list[_Waiter]] = {}
        self._ready = False
        # The resourceVersion up to which the watch has applied every change ("" before the first
        # list or when the source has none, e.g. manifests).
        self._watch_version = ""

    @property
    def ready(self) -> bool:
        """True once a full list has been loaded; /readyz reports it."""
        return self._ready

    def __len__(self) -> int:
        return len(self._items)

    def get(self, namespace: str, name: str) -> Identity | None:
        return self._items.get((namespace, name))

    def snapshot(self) -> dict[Key, Identity]:
        """A copy of every cached identity, taken under the lock (``/debug/alpha/cache``)."""
        with self._lock:
            return dict(self._items)

    # -- the watch ------------------------------------------------------------------------------
    def upsert(self, identity: Identity) -> None:
        key = (identity.namespace, identity.name)
        with self._lock:
            self._items[key] = identity
            if identity.resource_version:
                self._watch_version = identity.resource_version
            waiters = self._waiters.pop(key, None)
        if waiters:
            _wake(waiters, identity)

    def delete(self, namespace: str, name: str, resource_version: str = "") -> None:
        with self._lock:
            self._items.pop((namespace, name), None)
            if resource_version:
                self._watch_version = resource_version

    def advance(self, resource_version: str) -> None:
        """The watch has applied every change up to ``resource_version`` (a bookmark, a skipped event)."""
        if resource_version:
            with self._lock:
                self._watch_version = resource_version

    def replace_all(self, identities: Iterable[Identity], resource_version: str = "") -> None:
        """Swap in the result of a full list (first sync, or relist after 410 Gone)."""
        fresh = {(i.namespace, i.name): i for i in identities}
        with self._lock:
            self._items = fresh
            self._watch_version = resource_version
            self._ready = True
            woken = [(key, self._waiters.pop(key)) for key in list(self._waiters) if key in fresh]
        for key, waiters in woken:
            _wake(waiters, fresh[key])

    # -- a live GET -------------------------------------------------------------------------------
    def offer(self, identity: Identity) -> Identity | None:
        """Apply a live GET's answer unless the watch knows better; return what the cache now says.

        * cached already: replaced only if the answer's resourceVersion is newer than the cached one
          (so a GET that read before a change the watch has since delivered cannot undo it);
        * not cached: added only if its resourceVersion is newer than the one the watch has reached,
          or if the watch has reached none yet. The watch applies every change up to that version,
          so an older object that is not cached was deleted since (or could not be parsed), and a GET
          that read it before the delete must not bring it back.

        When the versions cannot be compared, the watch's view wins.
        """
        key = (identity.namespace, identity.name)
        with self._lock:
            current = self._items.get(key)
            if current is not None:
                if not newer(identity.resource_version, current.resource_version):
                    return current
            elif self._watch_version and not newer(identity.resource_version, self._watch_version):
                return None
            self._items[key] = identity
            waiters = self._waiters.pop(key, None)
        if waiters:
            _wake(waiters, identity)
        return identity

    # -- waiting for the watch --------------------------------------------------------------------
    async def wait_for_async(self, namespace: str, name: str, timeout: float) -> Identity | None:
        """Wait up to ``timeout`` seconds for a ServiceAccount to arrive, holding no thread.

        The waiter is a future of the running loop; the thread that writes the ServiceAccount
        resolves it with ``call_soon_threadsafe``.
        """
        key = (namespace, name)
        found = self._items.get(key)
        if found is not None or timeout <= 0:
            return found
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Identity | None] = loop.create_future()
        waiter: _Waiter = (loop, future)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                return found
            self._waiters.setdefault(key, []).append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return self._items.get(key)
        finally:
            with self._lock:
                waiting = self._waiters.get(key)
                if waiting is not None and waiter in waiting:
                    waiting.remove(waiter)
                    if not waiting:
                        del self._waiters[key]


def _wake(waiters: list[_Waiter], identity: Identity) -> None:
    for loop, future in waiters:
        try:
            loop.call_soon_threadsafe(_settle, future, identity)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            continue


def _settle(future: asyncio.Future[Identity | None], identity: Identity) -> None:
    if not future.done():  # it may have timed out meanwhile
        future.set_result(identity)


def _documents(path: Path) -> Iterator[Any]:
    files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json")) if path.is_dir() else [path]
    for file in files:
        with file.open(encoding="utf-8") as fh:
            yield from yaml.safe_load_all(fh)


def _service_accounts(doc: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(doc, Mapping):
        return
    if doc.get("kind") == "ServiceAccount":
        yield doc
    elif str(doc.get("kind", "")).endswith("List"):  # List, ServiceAccountList
        for item in doc.get("items") or ():
            yield from _service_accounts(item)


def load_manifests(
    paths: Iterable[str | Path], settings: Settings, default_namespace: str = "default"
) -> list[Identity]:
    """Identities of every ServiceAccount in the given files/folders (YAML or JSON, multi-document).

    Raises OSError or yaml.YAMLError on unreadable input; callers turn that into a one-line error.
    """
    identities: list[Identity] = []
    for path in paths:
        for doc in _documents(Path(path)):
            for sa in _service_accounts(doc):
                meta = dict(sa.get("metadata") or {})
                meta.setdefault("namespace", default_namespace)
                identities.append(parse_service_account({**sa, "metadata": meta}, settings))
    return identities


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
        from webhook import metrics  # here, not at import: the offline `mutate` command needs none

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
