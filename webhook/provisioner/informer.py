"""The controller's copy of its objects, kept current by the shared list+watch loop, and told to it
change by change.

Objects are kept whole (minus ``managedFields``, which nothing here reads and which grows with every
writer): a reconcile reads the spec, the metadata (generation, finalizers, deletion) and the status
it compares its own with. They are held by key (``name``, or ``namespace/name`` for a namespaced
kind: ``key``). Every change is handed to ``on_change(key, old, new)``: ``old`` None for an object
seen for the first time, ``new`` None for one that is gone; a relist reports only what differs from
what was held, so an expired watch does not make every object look new; our own write, held at once
(:meth:`ObjectCache.remember`), is reported too, so that whoever follows a status (a role following
its issuer) never waits for the watch to bring it back.

A kind the API server does not serve (HTTP 404: its CustomResourceDefinition is not installed, or
was removed) is waited for quietly: logged once, listed again with a backoff of up to a minute, and
``served`` says so (False), so that the process runs its other kinds and can be ready without it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from webhook.kube.objects import Count
from webhook.kube.reflector import Gone, ListCall, ListWatch

log = logging.getLogger("irsa_webhook.provisioner")

JSON = dict[str, Any]
OnChange = Callable[[str, JSON | None, JSON | None], None]
Key = Callable[[JSON], str]

# A kind not served is listed again after 1 s, doubling to this: installing its CRD is noticed
# within a minute, and a cluster that never installs it pays one small request a minute.
NOT_SERVED_RETRY_START = 1.0
NOT_SERVED_RETRY_MAX = 60.0


class _Stopped(Exception):
    """Stopped while waiting for the kind to be served."""


class ObjectCache(ListWatch[JSON]):
    """Objects of one kind by key."""

    def __init__(
        self,
        call: ListCall,
        on_change: OnChange,
        *,
        kind: str,
        restarts: Mapping[str, Count],
        parse_errors: Mapping[str, Count],
        watch_timeout: float = 300.0,
        key: Key | None = None,
    ) -> None:
        super().__init__(call, watch_timeout=watch_timeout, restarts=restarts, parse_errors=parse_errors)
        self.kind = kind
        self.thread_name = f"{kind.lower()}-watch"
        self._on_change = on_change
        self._key = key or name_of
        self._objects: dict[str, JSON] = {}
        self._lock = threading.Lock()
        self.synced = threading.Event()  # set once the first list is held
        self.served: bool | None = None  # None until the first list answers; False: HTTP 404

    # -- reading -------------------------------------------------------------------------------------
    def get(self, key: str) -> JSON | None:
        with self._lock:
            return self._objects.get(key)

    def object_keys(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    def settled(self) -> bool:
        """Listed once, or known not to be served: nothing more to wait for before being ready."""
        return self.synced.is_set() or self.served is False

    def remember(self, written: JSON, read_version: str) -> None:
        """Hold ``written`` (what our own write stored) if the cache still holds the version the write
        was computed from; a watch event that came in meanwhile is as new or newer, and stays."""
        key = self._key(written)
        new = _trimmed(written)
        with self._lock:
            held = self._objects.get(key)
            if held is None or _version(held) != read_version:
                return
            self._objects[key] = new
        self._on_change(key, held, new)

    # -- the loop's side -----------------------------------------------------------------------------
    def _read(self, obj: JSON) -> JSON:
        self._key(obj)  # raises: an object without a key cannot be kept
        return _trimmed(obj)

    def _replace(self, items: list[JSON], resource_version: str) -> None:
        fresh = {self._key(obj): obj for obj in items}
        with self._lock:
            old, self._objects = self._objects, fresh
        for key, obj in fresh.items():
            if old.get(key) != obj:
                self._on_change(key, old.get(key), obj)
        for key in old.keys() - fresh.keys():
            self._on_change(key, old[key], None)
        if self.served is False:
            log.info("%s are served now: listed and watched", self.kind)
        # Before synced: whoever synced wakes (readiness, a test) must find the kind served.
        self.served = True
        self.synced.set()

    def _apply(self, kind: str, obj: Any, resource_version: str) -> None:
        parsed = self._parse(obj, "watch")
        if parsed is None:
            return
        key = self._key(parsed)
        with self._lock:
            old = self._objects.pop(key, None) if kind == "DELETED" else self._objects.get(key)
            if kind != "DELETED":
                self._objects[key] = parsed
        self._on_change(key, old, None if kind == "DELETED" else parsed)

    def _list(self) -> None:
        delay = NOT_SERVED_RETRY_START
        while True:
            try:
                super()._list()
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self._not_served(delay)
                delay = min(delay * 2, NOT_SERVED_RETRY_MAX)
                continue
            return  # listed: _replace marked the kind served

    def _watch(self) -> str:
        try:
            return super()._watch()
        except ApiException as exc:
            if exc.status == 404:  # the CRD went while we watched: list again (and wait there)
                self.resource_version = None
                raise Gone from exc
            raise

    def _not_served(self, delay: float) -> None:
        if self.served is not False:
            log.warning(
                "%s are not served by the API server (HTTP 404: is their CustomResourceDefinition installed?); "
                "none is reconciled until they are, asked again every %.0fs at most",
                self.kind,
                NOT_SERVED_RETRY_MAX,
            )
        self.served = False
        if self._stop.wait(delay * random.uniform(0.5, 1.0)):  # noqa: S311 - jitter, not crypto
            raise _Stopped


def name_of(obj: JSON) -> str:
    name = (obj.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("metadata.name is missing")
    return name


def _version(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _trimmed(obj: JSON) -> JSON:
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = dict(obj, metadata={k: v for k, v in meta.items() if k != "managedFields"})
    return obj
