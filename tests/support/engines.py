"""A stand-in for the provisioner's engine, for the controller loop's own tests.

It is not a mock of AWS: the controller takes ``reconcile(obj) -> Outcome`` and ``delete(obj) ->
Outcome`` as callables, and these tests are about what the loop does with the answers (when it calls
again, what it writes to the object). Each call is recorded with the object as the engine saw it;
``script`` decides the answer per object (by ``namespace/name`` for a namespaced object, else by name;
default: in sync, Ready True).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from webhook.commands.controller import RoleWiring
from webhook.provisioner.model import Event, Outcome, Retry
from webhook.provisioner.rolemodel import CLUSTER_ROLE_KIND, ROLE_KIND

JSON = dict[str, Any]
Answer = Callable[[JSON], Outcome]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def outcome(obj: JSON, ready: bool = True, retry: Retry = "none", reason: str = "") -> Outcome:
    """What an engine answers: a status with a Ready condition (its lastTransitionTime always new, as
    a careless engine would write it) and the Event of that condition."""
    reason = reason or ("Reconciled" if ready else "Failed")
    condition = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": reason,
        "message": f"{reason} at generation {obj['metadata'].get('generation')}",
        "lastTransitionTime": now(),
        "observedGeneration": obj["metadata"].get("generation"),
    }
    status = {"observedGeneration": obj["metadata"].get("generation"), "conditions": [condition]}
    event = Event("Normal" if ready else "Warning", reason, condition["message"])
    return Outcome(status=status, events=(event,), retry=retry, error=None if ready else reason)


class ScriptedEngine:
    def __init__(self) -> None:
        self.calls: list[tuple[str, JSON]] = []  # ("reconcile" | "delete", the object as given)
        self.script: dict[str, Answer] = {}  # key -> answer of reconcile
        self.delete_script: dict[str, Answer] = {}  # key -> answer of delete (default: done)
        self.during: Callable[[JSON], object] | None = None  # runs inside each call (e.g. lose the lease)
        self.lock = threading.Lock()

    def reconcile(self, obj: JSON) -> Outcome:
        return self._call("reconcile", obj, self.script, outcome)

    def delete(self, obj: JSON) -> Outcome:
        return self._call("delete", obj, self.delete_script, lambda _: Outcome(status=None, done=True))

    def calls_of(self, kind: str, name: str | None = None) -> list[JSON]:
        """The calls of ``kind`` (reconcile, delete), of every object or of one (by key or by name)."""
        with self.lock:
            return [
                o for k, o in self.calls if k == kind and (name is None or name in (key_of(o), o["metadata"]["name"]))
            ]

    def _call(self, kind: str, obj: JSON, script: dict[str, Answer], default: Answer) -> Outcome:
        with self.lock:
            self.calls.append((kind, obj))
        if self.during is not None:
            self.during(obj)
        return script.get(key_of(obj), default)(obj)


def key_of(obj: JSON) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object (the controller's queue key)."""
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


class RoleEngines:
    """``irsa-webhook controller``'s role engine factory for a test: a stand-in per role kind, and the
    wiring each was built from (what the real engine would have been given)."""

    def __init__(self) -> None:
        self.engines = {ROLE_KIND: ScriptedEngine(), CLUSTER_ROLE_KIND: ScriptedEngine()}
        self.wirings: dict[str, RoleWiring] = {}

    def __call__(self, wiring: RoleWiring) -> ScriptedEngine:
        self.wirings[wiring.kind] = wiring
        return self.engines[wiring.kind]
