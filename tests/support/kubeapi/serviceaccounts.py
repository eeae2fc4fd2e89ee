"""ServiceAccount writes for the fake API server: create, server-side apply of annotations, delete with
a uid precondition, with kube-apiserver's field ownership (``metadata.managedFields``) for annotations.

What it keeps of kube-apiserver's behaviour (each checked against the real one by
tests/e2e/test_e2e_kube_serviceaccount_writes.py), because the provisioner depends on it:
- a create records the request's ``fieldManager`` as an ``Update`` owner of the annotations and
  labels it set; a create of an existing name is 409, in a namespace that does not exist 404;
- an apply (``application/apply-patch+yaml``) makes the manager's ``Apply`` entry own exactly the
  annotations applied: a key it owned and no longer applies goes, unless another manager owns it
  too; a key another manager owns with another value is a 409 with ``FieldManagerConflict`` causes;
  the same value is shared (``force=true``, which would take it over, is refused by this fake);
- an apply that changes nothing stores nothing (the resourceVersion stays);
- an apply to a missing object creates it, unless it names a uid (409); an apply naming another
  uid than the stored one is 422 (``metadata.uid`` is immutable);
- a delete whose uid precondition differs is 409.
Only annotations are applied: any other field in an applied object is a 422 of this fake, so a test
that needs more fails loudly instead of passing on behaviour the real API server does not have.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Iterable
from typing import Any

from .objects import JSON, status

Answer = tuple[int, JSON]
_VERSIONS = itertools.count(5000)
_TIME = "2026-01-01T00:00:00Z"


def _owned(entry: JSON, field: str = "f:annotations") -> set[str]:
    fields = ((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get(field) or {}
    return {key.removeprefix("f:") for key in fields if key.startswith("f:")}


def _entry(manager: str, operation: str, annotations: Iterable[str], labels: Iterable[str] = ()) -> JSON | None:
    metadata: JSON = {}
    for field, keys in (("f:annotations", sorted(annotations)), ("f:labels", sorted(labels))):
        if keys:
            metadata[field] = (
                {".": {}, **{f"f:{key}": {} for key in keys}}
                if operation == "Update"
                else {f"f:{key}": {} for key in keys}
            )
    if not metadata:
        return None  # the API server drops a manager that owns nothing
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": "v1",
        "time": _TIME,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": metadata},
    }


def create(items: list[JSON], namespace: str, body: Any, manager: str) -> Answer:
    meta = body.get("metadata") if isinstance(body, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    if not name:
        return 422, status(422, "metadata.name: Required value")
    if find(items, namespace, name) is not None:
        return 409, status(409, f'serviceaccounts "{name}" already exists')
    obj = copy.deepcopy(body)
    meta = obj["metadata"]
    meta.update(namespace=namespace, uid=str(uuid.uuid4()), resourceVersion=str(next(_VERSIONS)))
    meta.setdefault("creationTimestamp", _TIME)
    owner = _entry(manager or "unknown", "Update", meta.get("annotations") or {}, meta.get("labels") or {})
    if owner is not None:
        meta["managedFields"] = [owner]
    items.append(obj)
    return 201, obj


def apply(items: list[JSON], namespace: str, name: str, body: Any, manager: str) -> Answer:
    meta = body.get("metadata") if isinstance(body, dict) else None
    if not isinstance(meta, dict) or not manager:
        return 400, status(400, "an apply needs metadata and a fieldManager")
    extra = set(meta) - {"name", "namespace", "uid", "annotations"}
    if set(body) - {"apiVersion", "kind", "metadata"} or extra:
        return 422, status(422, f"the fake API server applies annotations only, not {sorted(extra) or 'spec'}")
    if meta.get("namespace", namespace) != namespace:
        return 400, status(400, "the namespace of the provided object does not match the namespace sent on the request")
    wanted: dict[str, str] = dict(meta.get("annotations") or {})
    current = find(items, namespace, name)
    uid = meta.get("uid")
    if current is None:
        if uid:
            message = f"uid mismatch: the provided object specified uid {uid}, and no existing object was found"
            return 409, status(409, f'Operation cannot be fulfilled on serviceaccounts "{name}": {message}')
        current = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}
        current["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=_TIME, resourceVersion="0")
        items.append(current)
    cmeta = current["metadata"]
    before = copy.deepcopy(cmeta)
    if uid and uid != cmeta.get("uid"):
        return 422, _invalid(name, "metadata.uid", f'Invalid value: "{uid}": field is immutable')
    entries: list[JSON] = list(cmeta.get("managedFields") or [])
    ours = next((e for e in entries if (e["manager"], e["operation"]) == (manager, "Apply")), None)
    others = [e for e in entries if e is not ours]
    annotations: dict[str, str] = dict(cmeta.get("annotations") or {})
    conflicts = [
        (other["manager"], key)
        for key, value in wanted.items()
        if annotations.get(key) != value
        for other in others
        if key in _owned(other)
    ]
    if conflicts:
        return 409, _conflict(conflicts)
    for key in (_owned(ours) if ours is not None else set()) - set(wanted):
        if not any(key in _owned(other) for other in others):
            annotations.pop(key, None)
    annotations.update(wanted)
    entry = _entry(manager, "Apply", wanted)
    cmeta["managedFields"] = [entry, *others] if entry is not None else others
    if not cmeta["managedFields"]:
        del cmeta["managedFields"]
    if annotations:
        cmeta["annotations"] = annotations
    else:
        cmeta.pop("annotations", None)
    if cmeta != before:  # an apply that changes nothing stores nothing (its resourceVersion stays)
        cmeta["resourceVersion"] = str(next(_VERSIONS))
    return 200, current


def delete(items: list[JSON], namespace: str, name: str, body: Any) -> Answer:
    current = find(items, namespace, name)
    if current is None:
        return 404, status(404, f'serviceaccounts "{name}" not found')
    preconditions = body.get("preconditions") if isinstance(body, dict) else None
    uid = preconditions.get("uid") if isinstance(preconditions, dict) else None
    stored = current["metadata"].get("uid")
    if uid and uid != stored:
        message = (
            f'Operation cannot be fulfilled on ServiceAccount "{name}": the UID in the precondition ({uid}) does '
            f"not match the UID in record ({stored}). The object might have been deleted and then recreated"
        )
        return 409, status(409, message)
    items.remove(current)
    return 200, current


def find(items: list[JSON], namespace: str, name: str) -> JSON | None:
    return next(
        (s for s in items if s["metadata"].get("namespace") == namespace and s["metadata"]["name"] == name), None
    )


def _conflict(conflicts: list[tuple[str, str]]) -> JSON:
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f'conflict with "{manager}" using v1',
            "field": f".metadata.annotations.{key}",
        }
        for manager, key in conflicts
    ]
    said = "; ".join(f'conflict with "{manager}" using v1: .metadata.annotations.{key}' for manager, key in conflicts)
    body = status(409, f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: {said}")
    body.update(reason="Conflict", details={"causes": causes})
    return body


def _invalid(name: str, field: str, message: str) -> JSON:
    body = status(422, f'ServiceAccount "{name}" is invalid: {field}: {message}')
    body.update(
        reason="Invalid",
        details={
            "name": name,
            "kind": "ServiceAccount",
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        },
    )
    return body
