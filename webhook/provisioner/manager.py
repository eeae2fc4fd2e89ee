"""Every kind of the provisioner in one process: IRSAIssuer, IRSARole and ClusterIRSARole, each with a
:class:`~webhook.provisioner.controller.Controller` of its own (its watch, its queue, its worker, its
series of the metrics), and what ties them together:

- **One Lease.** Leadership is the process's: :meth:`Manager.started_leading` and
  :meth:`Manager.stopped_leading` are handed to the one elector and fan out to every controller.
- **Roles follow their issuer.** A role engine reads its issuer's facts from the IRSAIssuer cache
  (:meth:`Manager.issuer`, by name). When an issuer's Ready condition, ``providerARN`` or
  ``issuerURL`` changes, or it appears or goes, every role whose ``spec.issuerRef`` names it is queued
  at once with its backoff started over: a role waiting for its issuer does not wait for the resync.
  Roles run without the issuer kind (``--kinds``) still follow issuers: they are watched, read only.
- **Readiness.** Ready once every kind run has been listed, or is known not to be served (HTTP 404:
  its CRD is not installed). A missing CRD is logged once, shown by
  ``irsa_webhook_provisioner_kind_served{kind}`` = 0 and listed again with backoff; it never holds
  back the kinds that are installed, and its objects are reconciled as soon as it is installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from kubernetes import client

from webhook.kube.customobjects import CustomObjects, CustomResource
from webhook.provisioner import controller_metrics as metrics
from webhook.provisioner.controller import Controller
from webhook.provisioner.informer import ObjectCache
from webhook.provisioner.model import API_GROUP, API_VERSION, ISSUER_KIND, ISSUER_PLURAL, JSON, Outcome
from webhook.provisioner.rolemodel import CLUSTER_ROLE_KIND, CLUSTER_ROLE_PLURAL, ROLE_KIND, ROLE_PLURAL

log = logging.getLogger("irsa_webhook.provisioner")

ISSUERS = CustomResource(API_GROUP, API_VERSION, ISSUER_PLURAL, kind=ISSUER_KIND)
ROLES = CustomResource(API_GROUP, API_VERSION, ROLE_PLURAL, kind=ROLE_KIND, namespaced=True)
CLUSTER_ROLES = CustomResource(API_GROUP, API_VERSION, CLUSTER_ROLE_PLURAL, kind=CLUSTER_ROLE_KIND)
RESOURCES = {resource.kind: resource for resource in (ISSUERS, ROLES, CLUSTER_ROLES)}
KINDS = tuple(RESOURCES)  # in the order they depend on each other
ROLE_KINDS = (ROLE_KIND, CLUSTER_ROLE_KIND)


class Engine(Protocol):
    def reconcile(self, obj: JSON) -> Outcome: ...

    def delete(self, obj: JSON) -> Outcome: ...


class Manager:
    """The controllers of one process; :meth:`run` one per kind, then :meth:`start`."""

    def __init__(
        self,
        api: client.ApiClient,
        field_manager: str,
        *,
        identity: str,
        resync: float = 3600.0,
        is_leader: Callable[[], bool] = lambda: True,
        watch_timeout: float = 300.0,
        label_selector: str = "",
    ) -> None:
        self._api = api
        self._field_manager = field_manager
        self._identity = identity
        self._resync = resync
        self._is_leader = is_leader
        self._watch_timeout = watch_timeout
        self._label_selector = label_selector
        self.controllers: dict[str, Controller] = {}
        self._issuer_view: ObjectCache | None = None  # the issuers, watched only (roles without issuers)

    def run(self, kind: str, engine: Engine) -> Controller:
        """A controller of ``kind`` (one of :data:`KINDS`) reconciling through ``engine``."""
        if kind in self.controllers:
            raise ValueError(f"{kind} is run already")
        controller = Controller(
            self._api,
            CustomObjects(self._api, RESOURCES[kind], self._field_manager),
            engine.reconcile,
            engine.delete,
            identity=self._identity,
            resync=self._resync,
            is_leader=self._is_leader,
            watch_timeout=self._watch_timeout,
            label_selector=self._label_selector,
            # Issuers: Retain unless asked (what they publish is shared); roles: Delete (issue 19).
            deletion_default="Retain" if kind == ISSUER_KIND else "Delete",
            on_change=self._issuer_changed if kind == ISSUER_KIND else None,
        )
        self.controllers[kind] = controller
        return controller

    # -- what the role engines read --------------------------------------------------------------------
    def issuer(self, name: str) -> JSON | None:
        """The IRSAIssuer ``name`` as last seen (with its status), None if there is none."""
        cache = self._issuers()
        return cache.get(name) if cache is not None else None

    # -- running -------------------------------------------------------------------------------------
    def start(self) -> None:
        if ISSUER_KIND not in self.controllers and any(kind in self.controllers for kind in ROLE_KINDS):
            kind_metrics = metrics.for_kind(ISSUER_KIND)
            self._issuer_view = ObjectCache(
                CustomObjects(self._api, ISSUERS, self._field_manager).list_call(self._label_selector),
                self._issuer_changed,
                kind=ISSUER_PLURAL,
                restarts=kind_metrics.watch_restarts,
                parse_errors=kind_metrics.parse_errors,
                watch_timeout=self._watch_timeout,
            )
            view = self._issuer_view
            metrics.SERVED.labels(ISSUER_KIND).set_function(lambda: 0 if view.served is False else 1)
            view.start()
        for controller in self.controllers.values():
            controller.start()

    def stop(self, timeout: float = 10.0) -> None:
        for controller in self.controllers.values():
            controller.stop(timeout)
        if self._issuer_view is not None:
            self._issuer_view.stop()

    def started_leading(self) -> None:
        for controller in self.controllers.values():
            controller.started_leading()

    def stopped_leading(self) -> None:
        for controller in self.controllers.values():
            controller.stopped_leading()

    def reconcile_issuers(self) -> None:
        """Queue every issuer now (kube-apiserver's keys changed); their roles follow their status."""
        controller = self.controllers.get(ISSUER_KIND)
        if controller is not None:
            controller.reconcile_all()

    def ready(self) -> tuple[bool, str]:
        """Every kind listed once or known not to be served; else why not."""
        waiting = [cache.kind for cache in self._caches() if not cache.settled()]
        if waiting:
            return False, f"the first list of {', '.join(waiting)} has not completed"
        return True, ""

    def not_served(self) -> list[str]:
        """The kinds the API server answers 404 for (their CRD is not installed)."""
        return [cache.kind for cache in self._caches() if cache.served is False]

    # -- issuers → roles -----------------------------------------------------------------------------
    def _issuer_changed(self, name: str, old: JSON | None, new: JSON | None) -> None:
        if issuer_facts(old) == issuer_facts(new):
            return
        for kind in ROLE_KINDS:
            controller = self.controllers.get(kind)
            if controller is None:
                continue
            woken = controller.wake_where(lambda obj: issuer_ref(obj) == name)
            if woken:
                log.debug("issuer %s changed: %s %s queued", name, kind, ", ".join(woken))

    def _issuers(self) -> ObjectCache | None:
        controller = self.controllers.get(ISSUER_KIND)
        return controller.cache if controller is not None else self._issuer_view

    def _caches(self) -> list[ObjectCache]:
        caches = [controller.cache for controller in self.controllers.values()]
        return caches + ([self._issuer_view] if self._issuer_view is not None else [])


def issuer_facts(obj: JSON | None) -> tuple[Any, ...] | None:
    """What a role takes from its issuer: its Ready condition's status, providerARN and issuerURL."""
    if obj is None:
        return None
    status = obj.get("status")
    status = status if isinstance(status, dict) else {}
    conditions = status.get("conditions")
    ready = next(
        (
            c.get("status")
            for c in (conditions if isinstance(conditions, list) else ())
            if isinstance(c, dict) and c.get("type") == "Ready"
        ),
        None,
    )
    return ready, status.get("providerARN"), status.get("issuerURL")


def issuer_ref(obj: JSON) -> str | None:
    """The IRSAIssuer a role names (``spec.issuerRef``: a name, or ``{name: ...}``), None if none."""
    spec = obj.get("spec")
    ref = spec.get("issuerRef") if isinstance(spec, dict) else None
    if isinstance(ref, dict):
        ref = ref.get("name")
    return ref if isinstance(ref, str) and ref else None
