"""The controller loop of one kind: the objects watched, a queue of their keys (``name``, or
``namespace/name`` for a namespaced kind), one worker reconciling them while this replica leads.

What the loop decides, and the engine does not:

- **When.** A new object, a new generation (a spec edit) or a deletion is reconciled at once; our own
  writes (status, finalizers) change no generation and wake nothing. After a reconcile in sync, the
  next is a resync in ``resync`` ± 10%; a retryable failure (``Outcome.retry == "backoff"``) is
  retried after a per-object exponential backoff (1 s doubling to 5 min, jittered); a terminal one
  waits until the object changes.
- **Whether.** Only while leading: the worker waits otherwise, and every write checks leadership
  first, so a replica that lost its Lease stops at the next write, before a successor starts.
- **The finalizer.** With ``deletionPolicy: Delete`` (or none, when the kind's ``deletion_default``
  is Delete) the finalizer is on the object before the engine first runs (so no AWS write can be
  orphaned by a deletion); with ``Retain`` ours is removed. On deletion the engine's ``delete``
  runs until it reports done, then the finalizer goes.
- **Writes to the object.** The status only when it differs from the stored one beyond
  ``lastTransitionTime``; the outcome's Events only along a status that changed (an Event tells of a
  transition, and none happened if the status did not move) or a deletion step.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from kubernetes import client

from webhook.kube import events
from webhook.kube.customobjects import Conflict, CustomObjects
from webhook.kube.objects import describe
from webhook.provisioner import controller_metrics as metrics
from webhook.provisioner.informer import ObjectCache, OnChange
from webhook.provisioner.model import Outcome
from webhook.provisioner.workqueue import Backoff, WorkQueue

log = logging.getLogger("irsa_webhook.provisioner")

JSON = dict[str, Any]
Reconcile = Callable[[JSON], Outcome]
DeletionDefault = Literal["Retain", "Delete"]

FINALIZER = "irsa-webhook.io/provisioner"
REPORTING_CONTROLLER = "irsa-webhook.io/provisioner"
RESYNC_JITTER = 0.1  # ± this fraction of --resync, so objects created together do not resync together
FINALIZER_TRIES = 3  # a finalizer write that keeps conflicting is retried with backoff instead


class NotLeader(Exception):
    """Leadership was lost mid-reconcile: nothing more is written."""


class Controller:
    def __init__(
        self,
        api: client.ApiClient,
        objects: CustomObjects,
        reconcile: Reconcile,
        delete: Reconcile,
        *,
        identity: str,
        resync: float = 3600.0,
        is_leader: Callable[[], bool] = lambda: True,
        backoff: Backoff | None = None,
        watch_timeout: float = 300.0,
        label_selector: str = "",
        deletion_default: DeletionDefault = "Retain",
        on_change: OnChange | None = None,
    ) -> None:
        """``on_change(key, old, new)`` is told every change the watch (or our own write) brings,
        after the loop took it: how another kind follows this one's objects."""
        self._api = api
        self._objects = objects
        self._reconcile = reconcile
        self._delete = delete
        self._identity = identity
        self._resync = resync
        self._is_leader = is_leader
        self._backoff = backoff or Backoff()
        self._deletion_default = deletion_default
        self._listener = on_change
        self.kind = objects.resource.label
        self._metrics = metrics.for_kind(self.kind)
        self.queue = WorkQueue()
        self.cache = ObjectCache(
            objects.list_call(label_selector),  # "": every object
            self._changed,
            kind=objects.resource.plural,
            restarts=self._metrics.watch_restarts,
            parse_errors=self._metrics.parse_errors,
            watch_timeout=watch_timeout,
            key=objects.key,
        )
        self._leading = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._metrics.queue_depth.set_function(self.queue.ready)
        self._metrics.objects.set_function(lambda: len(self.cache))
        metrics.SERVED.labels(self.kind).set_function(lambda: 0 if self.cache.served is False else 1)
        # One Lease for every kind of the process: each controller's is_leader is the same elector's.
        metrics.LEADER.set_function(lambda: 1 if self._is_leader() else 0)

    # -- running -------------------------------------------------------------------------------------
    def start(self) -> None:
        self.cache.start()
        self._worker = threading.Thread(target=self._work, name=f"{self.kind.lower()}-worker", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._leading.set()  # wake a worker waiting for leadership, so it sees the stop
        self.queue.shutdown()
        self.cache.stop()
        if self._worker is not None:
            self._worker.join(timeout)

    def synced(self) -> bool:
        return self.cache.synced.is_set()

    def settled(self) -> bool:
        """Listed once, or its kind is not served (no CRD): nothing to wait for before being ready."""
        return self.cache.settled()

    def started_leading(self) -> None:
        """Leadership gained: every object is reconciled (what the last leader scheduled is unknown)."""
        self.reconcile_all()
        self._leading.set()

    def reconcile_all(self) -> None:
        """Queue every object now (kube-apiserver's keys changed: :mod:`webhook.provisioner.keywatch`)."""
        for key in self.cache.object_keys():
            self.queue.add(key)

    def wake_where(self, wanted: Callable[[JSON], bool]) -> list[str]:
        """Queue now, with their backoff started over, the objects ``wanted`` says yes to (what they
        depend on changed: as good as a new spec); their keys."""
        woken = []
        for key in self.cache.object_keys():
            obj = self.cache.get(key)
            if obj is not None and wanted(obj):
                self._backoff.reset(key)
                self.queue.add(key)
                woken.append(key)
        return woken

    def stopped_leading(self) -> None:
        self._leading.clear()

    def _work(self) -> None:
        while not self._stop.is_set():
            if not self._is_leader():
                self._leading.wait(1.0)
                continue
            self.step()

    def step(self, timeout: float = 1.0) -> str | None:
        """Reconcile the next object due within ``timeout`` seconds; its key, None if none was due."""
        key = self.queue.get(timeout=timeout)
        if key is None:
            return None
        try:
            self._process(key)
        finally:
            self.queue.done(key)
        return key

    # -- what the watch says -------------------------------------------------------------------------
    def _changed(self, key: str, old: JSON | None, new: JSON | None) -> None:
        if new is None:
            self.queue.forget(key)
            self._backoff.reset(key)
        elif old is None or _generation(old) != _generation(new) or _deleting(new) != _deleting(old):
            self._backoff.reset(key)  # a new spec starts its retries afresh
            self.queue.add(key)
        if self._listener is not None:
            self._listener(key, old, new)

    # -- one object ----------------------------------------------------------------------------------
    def _process(self, key: str) -> None:
        obj = self.cache.get(key)
        if obj is None:
            return
        started = time.monotonic()
        try:
            result, outcome = self._sync(key, obj)
        except NotLeader:
            log.info("lost leadership while reconciling %s %s: it is left to the new leader", self.kind, key)
            self.queue.add(key)  # done again if this replica leads again
            return
        except Exception as exc:
            delay = self._backoff.next_delay(key)
            self.queue.add_after(key, delay)
            self._metrics.results["error"].inc()
            log.warning("reconcile of %s %s failed (%s); retrying in %.1fs", self.kind, key, describe(exc), delay)
            return
        if result is None:
            return
        self._metrics.results[result].inc()
        fields: JSON = {
            "kind": self.kind,
            "object": key,
            "result": result,
            "seconds": round(time.monotonic() - started, 3),
        }
        if outcome is not None:
            fields["changes"] = [change.summary for change in outcome.applied]
            if outcome.error:
                fields["error"] = outcome.error
        log.info("reconciled %s %s: %s", self.kind, key, result, extra={"fields": fields})

    def _sync(self, key: str, obj: JSON) -> tuple[str | None, Outcome | None]:
        """Reconcile or clean up ``obj``: the result (None: nothing to do) and the engine's outcome."""
        meta = obj.get("metadata") or {}
        delete_policy = ((obj.get("spec") or {}).get("deletionPolicy") or self._deletion_default) == "Delete"
        ours = FINALIZER in (meta.get("finalizers") or ())
        if _deleting(obj):
            if not ours:
                return None, None  # nothing of ours to clean up (Retain, or already done)
            outcome = None
            if delete_policy:
                outcome = self._call(self._delete, obj)
                self._write_status(obj, outcome)
                self._record(obj, outcome)
                if not outcome.done:
                    return self._schedule(key, outcome), outcome
            self._set_finalizer(obj, add=False)
            return "deleted", outcome
        if delete_policy != ours:
            obj = self._set_finalizer(obj, add=delete_policy)
        outcome = self._call(self._reconcile, obj)
        if self._write_status(obj, outcome):
            self._record(obj, outcome)
        return self._schedule(key, outcome), outcome

    def _call(self, step: Reconcile, obj: JSON) -> Outcome:
        # Checked again before each write that follows: the engine may take long.
        self._check_leader()
        return step(obj)

    def _schedule(self, key: str, outcome: Outcome) -> str:
        if outcome.retry == "backoff":
            self.queue.add_after(key, self._backoff.next_delay(key))
            return "retry"
        self._backoff.reset(key)
        if outcome.retry == "terminal":
            return "terminal"  # until the object changes (a new generation wakes it)
        self.queue.add_after(key, self._resync * random.uniform(1 - RESYNC_JITTER, 1 + RESYNC_JITTER))  # noqa: S311
        self._metrics.last_success.set(time.time())
        return "success"

    # -- writes --------------------------------------------------------------------------------------
    def _write_status(self, obj: JSON, outcome: Outcome) -> bool:
        """Write the outcome's status if it differs from the stored one; whether it was written."""
        if outcome.status is None or comparable(outcome.status) == comparable(obj.get("status")):
            return False
        self._check_leader()
        written = self._objects.write_status(self._objects.key(obj), outcome.status)
        if written is None:  # deleted meanwhile
            return False
        self.cache.remember(written, _version(obj))
        return True

    def _record(self, obj: JSON, outcome: Outcome) -> None:
        for event in outcome.events:
            self._check_leader()
            events.record(
                self._api,
                obj,
                event.type,
                event.reason,
                event.message,
                controller=REPORTING_CONTROLLER,
                instance=self._identity,
            )

    def _set_finalizer(self, obj: JSON, *, add: bool) -> JSON:
        """``obj`` with our finalizer added or removed, re-read and retried on a conflict."""
        key = self._objects.key(obj)
        for attempt in range(FINALIZER_TRIES):
            self._check_leader()
            read_version = _version(obj)
            try:
                if add:
                    written: JSON | None = self._objects.add_finalizer(obj, FINALIZER)
                else:
                    written = self._objects.remove_finalizer(obj, FINALIZER)
            except Conflict:
                fresh = self._objects.get(key)
                if fresh is None or attempt == FINALIZER_TRIES - 1:
                    raise
                obj = fresh
                continue
            if written is None:  # gone meanwhile
                return obj
            self.cache.remember(written, read_version)
            return written
        raise Conflict(f"the finalizers of {key} kept changing")

    def _check_leader(self) -> None:
        if self._stop.is_set() or not self._is_leader():
            raise NotLeader


def comparable(status: Any) -> Any:
    """``status`` without the conditions' ``lastTransitionTime``: two statuses that differ only there
    say the same thing, and writing one over the other would be a write for nothing."""
    if not isinstance(status, dict):
        return status
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return status
    trimmed = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} if isinstance(c, dict) else c for c in conditions
    ]
    return dict(status, conditions=trimmed)


def _generation(obj: JSON) -> Any:
    return (obj.get("metadata") or {}).get("generation")


def _deleting(obj: JSON) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _version(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
