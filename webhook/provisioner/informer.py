"""The controller's copy of its objects, kept current by the shared list+watch loop, and told to it
change by change.

Objects are kept whole (minus ``managedFields``, which nothing here reads and which grows with every
writer): a reconcile reads the spec, the metadata (generation, finalizers, deletion) and the status
it compares its own with. Every change is handed to ``on_change(name, old, new)``: ``old`` None for
an object seen for the first time, ``new`` None for one that is gone; a relist reports only what
differs from what was held, so an expired watch does not make every object look new.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from webhook.kube.objects import Count
from webhook.kube.reflector import ListCall, ListWatch

JSON = dict[str, Any]
OnChange = Callable[[str, JSON | None, JSON | None], None]


class ObjectCache(ListWatch[JSON]):
    """Cluster-scoped objects by name."""

    def __init__(
        self,
        call: ListCall,
        on_change: OnChange,
        *,
        kind: str,
        restarts: Mapping[str, Count],
        parse_errors: Mapping[str, Count],
        watch_timeout: float = 300.0,
    ) -> None:
        super().__init__(call, watch_timeout=watch_timeout, restarts=restarts, parse_errors=parse_errors)
        self.kind = kind
        self.thread_name = f"{kind.lower()}-watch"
        self._on_change = on_change
        self._objects: dict[str, JSON] = {}
        self._lock = threading.Lock()
        self.synced = threading.Event()  # set once the first list is held

    # -- reading -------------------------------------------------------------------------------------
    def get(self, name: str) -> JSON | None:
        with self._lock:
            return self._objects.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._objects)

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    def remember(self, written: JSON, read_version: str) -> None:
        """Hold ``written`` (what our own write stored) if the cache still holds the version the write
        was computed from; a watch event that came in meanwhile is as new or newer, and stays."""
        name = name_of(written)
        with self._lock:
            held = self._objects.get(name)
            if held is not None and _version(held) == read_version:
                self._objects[name] = _trimmed(written)

    # -- the loop's side -----------------------------------------------------------------------------
    def _read(self, obj: JSON) -> JSON:
        name_of(obj)  # raises: an object without a name cannot be kept
        return _trimmed(obj)

    def _replace(self, items: list[JSON], resource_version: str) -> None:
        fresh = {name_of(obj): obj for obj in items}
        with self._lock:
            old, self._objects = self._objects, fresh
        for name, obj in fresh.items():
            if old.get(name) != obj:
                self._on_change(name, old.get(name), obj)
        for name in old.keys() - fresh.keys():
            self._on_change(name, old[name], None)
        self.synced.set()

    def _apply(self, kind: str, obj: Any, resource_version: str) -> None:
        parsed = self._parse(obj, "watch")
        if parsed is None:
            return
        name = name_of(parsed)
        with self._lock:
            old = self._objects.pop(name, None) if kind == "DELETED" else self._objects.get(name)
            if kind != "DELETED":
                self._objects[name] = parsed
        self._on_change(name, old, None if kind == "DELETED" else parsed)


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
