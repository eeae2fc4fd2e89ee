"""Custom resources as raw JSON: the reflector's list call, a GET, the status written whole, and a
finalizer added or removed without losing anyone else's.

An object is named by its key: ``name`` for a cluster-scoped kind, ``namespace/name`` for a
namespaced one (as client-go's cache keys them). The list and watch span every namespace
(``/apis/{group}/{version}/{plural}`` serves a namespaced kind across all of them too).

Two kinds of write, two kinds of concurrency:

- The status belongs to one controller: it is written whole (a JSON patch ``add`` of ``/status``,
  which replaces it) with no resourceVersion, so a spec edit made meanwhile never makes the write fail
  and the status is never dropped for a conflict that does not concern it.
- ``metadata.finalizers`` is shared with every other controller and user: each change carries a
  ``test`` of what it was computed from (the list, or the one entry it removes), so a concurrent
  edit makes it fail (:class:`Conflict`: read again) instead of being overwritten.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.kube import rawapi
from webhook.kube.reflector import ListCall

JSON = dict[str, Any]


class Conflict(Exception):
    """The object changed (or went) since it was read: read it again and decide again."""


@dataclass(frozen=True)
class CustomResource:
    """A custom resource: ``/apis/{group}/{version}/{plural}`` (every object, of every namespace), and
    ``.../namespaces/{namespace}/{plural}/{name}`` for one object of a namespaced kind."""

    group: str
    version: str
    plural: str
    kind: str = ""  # names the objects in logs and metrics (the plural when empty)
    namespaced: bool = False

    @property
    def path(self) -> str:
        return f"/apis/{self.group}/{self.version}/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def label(self) -> str:
        return self.kind or self.plural

    def key(self, obj: JSON) -> str:
        """The key of ``obj``: ``namespace/name`` for a namespaced kind, else ``name``; ValueError
        when the object lacks what its key needs."""
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("metadata.name is missing")
        if not self.namespaced:
            return name
        namespace = meta.get("namespace")
        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"metadata.namespace is missing (a {self.label} is namespaced)")
        return f"{namespace}/{name}"

    def object_path(self, key: str) -> str:
        """The path of the object of ``key``."""
        if not self.namespaced:
            if "/" in key:
                raise ValueError(f"{key!r} is not the name of a cluster-scoped {self.label}")
            return f"{self.path}/{key}"
        namespace, _, name = key.partition("/")
        if not namespace or not name or "/" in name:
            raise ValueError(f"{key!r} is not namespace/name (a {self.label} is namespaced)")
        return f"/apis/{self.group}/{self.version}/namespaces/{namespace}/{self.plural}/{name}"


class CustomObjects:
    """Reads and writes of one custom resource, as raw JSON, objects named by their key."""

    def __init__(self, api: client.ApiClient, resource: CustomResource, field_manager: str) -> None:
        self._api = api
        self.resource = resource
        self._field_manager = field_manager

    def list_call(self, label_selector: str = "") -> ListCall:
        """The reflector's list (and, with ``watch=True``, watch) call: every object, or those the
        label selector matches."""
        objects = client.CustomObjectsApi(self._api)
        resource = (self.resource.group, self.resource.version, self.resource.plural)
        if label_selector:
            return functools.partial(objects.list_cluster_custom_object, *resource, label_selector=label_selector)
        return functools.partial(objects.list_cluster_custom_object, *resource)

    def key(self, obj: JSON) -> str:
        return self.resource.key(obj)

    def get(self, key: str) -> JSON | None:
        """The object as stored now, None if there is none."""
        try:
            found: JSON = rawapi.call(self._api, "GET", self.resource.object_path(key))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def write_status(self, key: str, status: JSON) -> JSON | None:
        """Replace the whole ``.status`` of the object of ``key`` (the status subresource); the object
        as stored after the write, None if it is gone."""
        patch = [{"op": "add", "path": "/status", "value": status}]
        try:
            return self._patch(self.resource.object_path(key) + "/status", patch)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def add_finalizer(self, obj: JSON, finalizer: str) -> JSON:
        """``obj`` with ``finalizer`` appended to its finalizers (the object as stored after the write).

        Conflict if its finalizers changed since ``obj`` was read (or, when it had none, if anything
        changed: JSON patch cannot test that a member is absent, so the resourceVersion is tested).
        """
        meta = obj.get("metadata") or {}
        current = meta.get("finalizers")
        if isinstance(current, list) and finalizer in current:
            return obj
        patch: list[JSON]
        if isinstance(current, list) and current:
            patch = [
                {"op": "test", "path": "/metadata/finalizers", "value": current},
                {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
            ]
        else:
            patch = [
                {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")},
                {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
            ]
        return self._write_metadata(obj, patch)

    def remove_finalizer(self, obj: JSON, finalizer: str) -> JSON | None:
        """``obj`` without ``finalizer`` (as stored after the write: removing the last finalizer of a
        deleted object lets it go), None if it was already gone.

        Only that entry is removed, after a ``test`` that it is still at the index it was read at:
        a finalizer another controller added or removed meanwhile is a Conflict, never lost.
        """
        current = (obj.get("metadata") or {}).get("finalizers")
        if not isinstance(current, list) or finalizer not in current:
            return obj
        index = current.index(finalizer)
        patch = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": finalizer},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        try:
            return self._write_metadata(obj, patch)
        except Conflict:
            if self.get(self.key(obj)) is None:
                return None
            raise

    def _write_metadata(self, obj: JSON, patch: list[JSON]) -> JSON:
        try:
            written = self._patch(self.resource.object_path(self.key(obj)), patch)
        except ApiException as exc:
            # 422: a `test` failed (the finalizers or the object changed); 409: a write raced ours
            # inside the API server; 404: deleted meanwhile. Each: read again.
            if exc.status in (404, 409, 422):
                raise Conflict(f"HTTP {exc.status}: {rawapi.status_message(exc)}") from None
            raise
        return written

    def _patch(self, path: str, patch: list[JSON]) -> JSON:
        written: JSON = rawapi.call(
            self._api,
            "PATCH",
            path,
            body=patch,
            content_type=rawapi.JSON_PATCH,
            query=[("fieldManager", self._field_manager)],
        )
        return written
