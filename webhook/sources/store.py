"""ServiceAccount identities, looked up by (namespace, name).

The store keeps one small immutable :class:`~webhook.core.records.Identity` per ServiceAccount, parsed once
when the object is seen; nothing else of the object is kept. Sources fill it:

* :class:`webhook.sources.serviceaccounts.ServiceAccountWatcher` — cluster-wide list+watch (production);
* :func:`webhook.sources.manifests.load_manifests` — manifests on disk (``--service-accounts``, demos, tests);
* :class:`webhook.sources.serviceaccounts.LiveLookup` — a live GET on a cache miss, through :meth:`IdentityStore.offer`;
* tests write to it directly.

Readers never block on writers for long: every write happens under one lock, reads of a dict entry
are atomic in CPython and need none. Nothing waits on a thread: a request waiting for the watch to
deliver a ServiceAccount awaits a future that the writing thread resolves through its event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from typing import Protocol

from webhook.core.records import Identity

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
    """What the resolver, ``/debug/alpha/cache`` and the cache metrics need from a ServiceAccount store
    (:class:`IdentityStore`, or a stand-in in tests)."""

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
