"""ServiceAccount identities, looked up by (namespace, name).

The store keeps one small immutable :class:`~webhook.types.Identity` per ServiceAccount, parsed once
when the object is seen; nothing else of the object is kept. Sources fill it:

* :class:`webhook.watch.ServiceAccountWatcher` — cluster-wide list+watch (production);
* :func:`load_manifests` — ServiceAccount manifests on disk (``--service-accounts``, demos, tests);
* tests write to it directly.

Readers never block on writers for long: every write happens under one lock, reads of a dict entry
are atomic in CPython and need none.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml

from webhook.identity import parse_service_account
from webhook.settings import Settings
from webhook.types import Identity

Key = tuple[str, str]


class IdentitySource(Protocol):
    """What the admission handler needs from a ServiceAccount cache."""

    @property
    def ready(self) -> bool: ...

    def get(self, namespace: str, name: str) -> Identity | None: ...

    def wait_for(self, namespace: str, name: str, timeout: float) -> Identity | None: ...

    def __len__(self) -> int: ...


class IdentityStore:
    """The in-memory cache, also the in-memory implementation used by tests."""

    def __init__(self) -> None:
        self._items: dict[Key, Identity] = {}
        self._cond = threading.Condition()
        self._ready = False

    @property
    def ready(self) -> bool:
        """True once a full list has been loaded; /readyz reports it."""
        return self._ready

    def __len__(self) -> int:
        return len(self._items)

    def get(self, namespace: str, name: str) -> Identity | None:
        return self._items.get((namespace, name))

    def upsert(self, identity: Identity) -> None:
        with self._cond:
            self._items[(identity.namespace, identity.name)] = identity
            self._cond.notify_all()

    def delete(self, namespace: str, name: str) -> None:
        with self._cond:
            self._items.pop((namespace, name), None)

    def replace_all(self, identities: Iterable[Identity]) -> None:
        """Swap in the result of a full list (first sync, or relist after 410 Gone)."""
        fresh = {(i.namespace, i.name): i for i in identities}
        with self._cond:
            self._items = fresh
            self._ready = True
            self._cond.notify_all()

    def wait_for(self, namespace: str, name: str, timeout: float) -> Identity | None:
        """Wait up to ``timeout`` seconds for the watch to deliver a ServiceAccount."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._items.get((namespace, name))
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0:
                    return found
                self._cond.wait(remaining)


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


class Resolver:
    """Cache first; on a miss a live GET [ours: on by default], then the grace period for the watch.

    The slow path blocks (network, waiting), so the server runs it in a worker thread.
    """

    def __init__(self, store: IdentitySource, live_get: LiveGet | None = None, grace: float = 0.0) -> None:
        self.store = store
        self.live_get = live_get
        self.grace = grace

    def cached(self, namespace: str, name: str) -> Identity | None:
        return self.store.get(namespace, name)

    def slow(self, namespace: str, name: str) -> Identity | None:
        if self.live_get is not None:
            answer = self.live_get(namespace, name)
            if answer is not False:  # the API server answered: found, or definitely not found
                return answer if isinstance(answer, Identity) else None
        if self.grace > 0:
            return self.store.wait_for(namespace, name, self.grace)
        return self.store.get(namespace, name)
