"""Any API-group object for the fake API server: create, get, list, replace, patch and delete with the
API server's concurrency rules, for the code that writes (Leases, custom resources, Events).

What it keeps of kube-apiserver's behaviour, because the code under test depends on it:
- a replace carrying a stale ``metadata.resourceVersion`` is HTTP 409, a create of an existing name 409;
- a JSON patch (RFC 6902) whose ``test`` fails, or that names a missing path, is HTTP 422;
- ``.../status`` writes change only ``.status``; other writes keep the stored status;
- ``metadata.generation`` moves when the spec changes or the deletion starts;
- a delete of an object with finalizers only sets ``deletionTimestamp``; it goes once they are gone;
- a list honours a ``labelSelector`` of ``key=value`` pairs;
- a namespaced kind is stored per namespace (``/apis/g/v/namespaces/ns/plural/name``) and listed in
  one namespace or across all of them (``/apis/g/v/plural``).
A watch answers an empty stream at once (the tests that need watches use the real API server).
"""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import jsonpatch

from .objects import JSON, list_of, status

Answer = tuple[int, Any]  # (HTTP status, body: a JSON value, or bytes sent as they are)


@dataclass(frozen=True)
class Where:
    collection: str  # /apis/group/version[/namespaces/ns]/plural
    name: str | None
    subresource: str | None
    namespace: str | None


def where(path: str) -> Where | None:
    parts = path.strip("/").split("/")
    if len(parts) < 4 or parts[0] != "apis":
        return None
    head, rest = parts[:3], parts[3:]
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace = rest[1]
        head, rest = [*head, "namespaces", rest[1]], rest[2:]
    if len(rest) > 3:
        return None
    collection = "/" + "/".join([*head, rest[0]])
    return Where(collection, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None, namespace)


@dataclass
class ObjectStore:
    objects: dict[tuple[str, str], JSON] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def get(self, collection: str, name: str) -> JSON | None:
        with self.lock:
            found = self.objects.get((collection, name))
            return copy.deepcopy(found) if found is not None else None

    def put(self, collection: str, obj: JSON) -> JSON:
        """Store ``obj`` as a create would (a test's setup)."""
        code, body = self.handle("POST", collection, {}, obj, "application/json")
        assert code == 201, body
        stored: JSON = body
        return stored

    def handle(self, method: str, path: str, query: dict[str, str], body: Any, content_type: str) -> Answer:
        at = where(path)
        if at is None:
            return 404, status(404, "not found")
        with self.lock:
            if at.name is None:
                if method == "GET":
                    if query.get("watch") in ("true", "1"):
                        return 200, b""
                    wanted = dict(pair.split("=", 1) for pair in query.get("labelSelector", "").split(",") if pair)
                    items = [
                        o
                        for (c, _), o in sorted(self.objects.items())
                        if listed(c, at) and wanted.items() <= (o["metadata"].get("labels") or {}).items()
                    ]
                    return 200, list_of(items, str(self._peek()), kind="List")
                if method == "POST":
                    return self._create(at, body)
                return 405, status(405, "method not allowed")
            current = self.objects.get((at.collection, at.name))
            if current is None:
                return 404, status(404, f'"{at.name}" not found')
            if method == "GET":
                return 200, current
            if method == "DELETE":
                return self._delete(at, current)
            if method == "PUT":
                sent = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
                if sent and sent != current["metadata"]["resourceVersion"]:
                    return 409, status(409, "the object has been modified; please apply your changes to the latest")
                return self._write(at, current, body)
            if method == "PATCH":
                try:
                    if "json-patch" in content_type:
                        patched = jsonpatch.apply_patch(current, body)
                    else:
                        patched = merge(current, body)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                    return 422, status(422, f"the server rejected our request due to an error in our request: {exc}")
                return self._write(at, current, patched)
        return 405, status(405, "method not allowed")

    # -- under the lock ------------------------------------------------------------------------------
    def _peek(self) -> int:
        return next(copy.copy(self._versions))

    def _create(self, at: Where, body: Any) -> Answer:
        name = (body.get("metadata") or {}).get("name") if isinstance(body, dict) else None
        if not name:
            return 422, status(422, "metadata.name: Required value")
        if (at.collection, name) in self.objects:
            return 409, status(409, f'"{name}" already exists')
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        meta.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp="2026-01-01T00:00:00Z")
        if at.namespace:
            meta["namespace"] = at.namespace
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[(at.collection, name)] = obj
        return 201, obj

    def _write(self, at: Where, current: JSON, sent: JSON) -> Answer:
        sent = copy.deepcopy(sent)
        if at.subresource == "status":  # only the status moves
            new = copy.deepcopy(current)
            new.pop("status", None)
            if sent.get("status") is not None:
                new["status"] = sent["status"]
        else:  # everything but the status
            new = sent
            new.pop("status", None)
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
        meta = dict(new.get("metadata") or {})
        old_meta = current["metadata"]
        for fixed in ("uid", "creationTimestamp", "deletionTimestamp", "name", "namespace"):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
        generation = old_meta.get("generation", 1)
        meta["generation"] = generation + 1 if new.get("spec") != current.get("spec") else generation
        meta["resourceVersion"] = str(next(self._versions))
        new["metadata"] = meta
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.objects[(at.collection, meta["name"])]
        else:
            self.objects[(at.collection, meta["name"])] = new
        return 200, new

    def _delete(self, at: Where, current: JSON) -> Answer:
        meta = current["metadata"]
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                meta.update(deletionTimestamp="2026-01-01T00:00:01Z", generation=meta.get("generation", 1) + 1)
                meta["resourceVersion"] = str(next(self._versions))
            return 200, current
        del self.objects[(at.collection, meta["name"])]
        return 200, current


def listed(collection: str, at: Where) -> bool:
    """Whether a list of ``at`` holds the objects of ``collection``: its own, and, for a list without a
    namespace (``/apis/g/v/plural``), those of every namespace (as for a namespaced kind across all)."""
    if collection == at.collection:
        return True
    if at.namespace is not None:
        return False
    parts, wanted = collection.strip("/").split("/"), at.collection.strip("/").split("/")
    return len(parts) == 6 and parts[3] == "namespaces" and [*parts[:3], parts[5]] == wanted


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result
