"""The controller loop against the real API server, with a stand-in engine: the IRSAIssuer CRD
(tests/support/crds), the real watch, status subresource, finalizers, Events and Lease. What is
checked is the loop's part: the finalizer is on before the engine first runs and goes after a
completed delete; the status is written once, not on every resync; Events only on transitions;
retryable failures back off; a terminal one waits for a new generation; only the leader reconciles.
And the same for a namespaced kind (IRSARole, its CRD the test-only stand-in of tests/support until
the shipped one is merged): keyed by namespace and name, written and noted in its own namespace."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.controlplane import ControlPlane
from tests.support.crds import issuer_crd as installed_crd
from tests.support.crds import role_crd as installed_role_crd
from tests.support.engines import ScriptedEngine, outcome
from tests.support.waits import wait_for
from webhook.kube.customobjects import CustomObjects, CustomResource
from webhook.kube.lease import LeaderElector, LeaseConfig
from webhook.provisioner.controller import FINALIZER, Controller
from webhook.provisioner.manager import ROLES
from webhook.provisioner.model import API_GROUP, API_VERSION, ISSUER_KIND, ISSUER_PLURAL
from webhook.provisioner.rolemodel import ROLE_KIND, ROLE_PLURAL

from .shared import NamespaceFactory

pytestmark = pytest.mark.e2e

COLLECTION = f"/apis/{API_GROUP}/{API_VERSION}/{ISSUER_PLURAL}"
RUN_LABEL = "irsa-e2e.test/controller-run"
JSON = dict[str, Any]


@pytest.fixture(scope="module")
def issuer_crd(control_plane: ControlPlane) -> Iterator[None]:
    """The shipped CRD, removed after the module."""
    with installed_crd(control_plane):
        yield


class Harness:
    """Controllers of one test, following only this test's objects (a label of its own)."""

    def __init__(self, api: Any, kube: k.KubeRest) -> None:
        self.api = api
        self.kube = kube
        self.run = secrets.token_hex(4)
        self.controllers: list[Controller] = []
        self.electors: list[LeaderElector] = []
        self.names: list[str] = []

    def start(self, resync: float = 3600.0, is_leader: Callable[[], bool] = lambda: True) -> ScriptedEngine:
        engine = ScriptedEngine()
        objects = CustomObjects(self.api, CustomResource(API_GROUP, API_VERSION, ISSUER_PLURAL), "irsa-e2e")
        controller = Controller(
            self.api,
            objects,
            engine.reconcile,
            engine.delete,
            identity=f"e2e-{len(self.controllers)}",
            resync=resync,
            is_leader=is_leader,
            label_selector=f"{RUN_LABEL}={self.run}",
        )
        controller.start()
        self.controllers.append(controller)
        wait_for(controller.synced, timeout=10, what="the controller's first list")
        return engine

    def create(self, policy: str = "Retain") -> str:
        name = f"e2e-{self.run}-{len(self.names)}"
        self.names.append(name)
        meta = {"name": name, "labels": {RUN_LABEL: self.run}}
        spec = {"issuerURL": "https://issuer.example", "deletionPolicy": policy}
        self.kube.create(
            COLLECTION,
            {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": ISSUER_KIND, "metadata": meta, "spec": spec},
        )
        return name

    def get(self, name: str) -> JSON:
        return self.kube.get(f"{COLLECTION}/{name}")

    def events(self, name: str) -> list[JSON]:
        found = self.kube.request(
            "GET", "/api/v1/namespaces/default/events", params={"fieldSelector": f"involvedObject.name={name}"}
        )
        items: list[JSON] = found["items"]
        return items

    def stop(self) -> None:
        for controller in self.controllers:
            controller.stop()
        for elector in self.electors:
            elector.stop()
        for name in self.names:  # nothing of this test may outlive it
            path = f"{COLLECTION}/{name}"
            try:
                self.kube.merge_patch(path, {"metadata": {"finalizers": None}})
                self.kube.delete(path)
            except k.KubeApiError as exc:
                if exc.status != 404:
                    raise


@pytest.fixture
def harness(api_client: Any, kube: k.KubeRest, issuer_crd: None) -> Iterator[Harness]:
    made = Harness(api_client, kube)
    yield made
    made.stop()


def test_finalizer_status_once_events_on_transitions_and_deletion(harness: Harness) -> None:
    seen: list[Any] = []
    engine = harness.start(resync=1.0)
    engine.during = lambda obj: seen.append(harness.get(obj["metadata"]["name"])["metadata"].get("finalizers"))
    name = harness.create("Delete")
    wait_for(lambda: bool(seen), timeout=10, what="the first reconcile")
    assert seen[0] == [FINALIZER]  # stored before the engine's first (AWS) write
    wait_for(lambda: harness.get(name).get("status"), timeout=10, what="the status")
    written = harness.get(name)["metadata"]["resourceVersion"]
    calls = len(engine.calls_of("reconcile", name))
    wait_for(lambda: len(engine.calls_of("reconcile", name)) >= calls + 3, timeout=10, what="three resyncs")
    assert harness.get(name)["metadata"]["resourceVersion"] == written  # resyncs wrote nothing
    assert [e["reason"] for e in harness.events(name)] == ["Reconciled"]  # one transition, one Event
    event = harness.events(name)[0]
    assert event["reportingComponent"] == "irsa-webhook.io/provisioner"
    assert event["involvedObject"]["kind"] == ISSUER_KIND

    engine.script[name] = lambda obj: outcome(obj, ready=False, retry="none", reason="AccessDenied")
    wait_for(lambda: [e["reason"] for e in harness.events(name)] == ["Reconciled", "AccessDenied"], timeout=10)
    assert harness.get(name)["status"]["conditions"][0]["reason"] == "AccessDenied"

    harness.kube.delete(f"{COLLECTION}/{name}")
    wait_for(lambda: not harness.kube.exists(f"{COLLECTION}/{name}"), timeout=10, what="the object to go")
    (deleted,) = engine.calls_of("delete", name)
    assert deleted["metadata"]["deletionTimestamp"]


def test_retain_keeps_no_finalizer_and_a_deletion_never_reaches_the_engine(harness: Harness) -> None:
    engine = harness.start()
    name = harness.create("Retain")
    wait_for(lambda: harness.get(name).get("status"), timeout=10, what="the status")
    assert "finalizers" not in harness.get(name)["metadata"]
    harness.kube.delete(f"{COLLECTION}/{name}")
    assert not harness.kube.exists(f"{COLLECTION}/{name}")
    time.sleep(0.5)
    assert engine.calls_of("delete") == []


def test_retryable_failures_back_off(harness: Harness) -> None:
    engine = harness.start(resync=0.2)  # a resync would come far sooner than the backoff
    stamps: list[float] = []

    def throttled(obj: JSON) -> Any:
        stamps.append(time.monotonic())
        return outcome(obj, ready=False, retry="backoff", reason="Throttled")

    engine.script[harness.create()] = throttled
    wait_for(lambda: len(stamps) >= 4, timeout=15, what="three retries")
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    for ceiling, gap in zip((1, 2, 4), gaps, strict=False):
        assert ceiling / 2 - 0.1 <= gap <= ceiling + 1, gaps


def test_terminal_waits_for_a_new_generation(harness: Harness) -> None:
    engine = harness.start(resync=0.5)
    name = f"e2e-{harness.run}-0"
    engine.script[name] = lambda obj: outcome(obj, ready=False, retry="terminal", reason="InvalidSpec")
    harness.create()
    wait_for(lambda: harness.get(name).get("status"), timeout=10, what="the status")
    harness.kube.merge_patch(f"{COLLECTION}/{name}", {"metadata": {"labels": {"touched": "yes"}}})
    time.sleep(2.0)  # four resync periods and a metadata change: nothing
    assert len(engine.calls_of("reconcile", name)) == 1
    harness.kube.merge_patch(f"{COLLECTION}/{name}", {"spec": {"issuerURL": "https://fixed.example"}})
    wait_for(lambda: len(engine.calls_of("reconcile", name)) == 2, timeout=10, what="the reconcile of the fix")
    assert engine.calls_of("reconcile", name)[1]["spec"]["issuerURL"] == "https://fixed.example"


def test_only_the_leader_reconciles(harness: Harness, make_namespace: NamespaceFactory) -> None:
    namespace = make_namespace(labels={})
    engines: list[ScriptedEngine] = []
    for identity in ("first", "second"):
        elector = LeaderElector(harness.api, LeaseConfig(namespace, "provisioner", identity, 3.0, 2.0, 0.25))
        harness.electors.append(elector)
        engine = harness.start(resync=0.5, is_leader=elector.is_leader)
        controller = harness.controllers[-1]
        elector.start(controller.started_leading, controller.stopped_leading)
        if identity == "first":
            wait_for(elector.is_leader, timeout=10, what="the first replica to lead")
        engines.append(engine)
    first, second = engines
    name = harness.create()
    wait_for(lambda: len(first.calls_of("reconcile", name)) >= 3, timeout=10, what="the leader's resyncs")
    assert second.calls == []
    harness.controllers[0].stop()  # as the command stops: the worker first, then the Lease is released
    harness.electors[0].stop()
    wait_for(lambda: bool(second.calls_of("reconcile", name)), timeout=5, what="the new leader's reconcile")
    calls = len(first.calls)
    time.sleep(1.0)
    assert len(first.calls) == calls


# -- a namespaced kind (IRSARole) ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def role_crd(control_plane: ControlPlane) -> Iterator[None]:
    """The IRSARole CRD (the test-only stand-in until the shipped one is merged), removed after the module."""
    with installed_role_crd(control_plane):
        yield


def roles_in(namespace: str) -> str:
    return f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/{ROLE_PLURAL}"


@pytest.fixture
def role_objects(kube: k.KubeRest, role_crd: None) -> Iterator[list[str]]:
    """Paths of the IRSARoles a test made: their finalizers stripped and they deleted after it (a
    leftover finalizer would hold the CRD's deletion, and namespaces never finish terminating here)."""
    made: list[str] = []
    yield made
    for path in made:
        try:
            kube.merge_patch(path, {"metadata": {"finalizers": None}})
            kube.delete(path)
        except k.KubeApiError as exc:
            if exc.status != 404:
                raise


def test_a_namespaced_kind_is_reconciled_written_and_cleaned_up_in_its_namespace(
    api_client: Any, kube: k.KubeRest, make_namespace: NamespaceFactory, role_objects: list[str]
) -> None:
    run = secrets.token_hex(4)
    namespaces = [make_namespace(labels={}), make_namespace(labels={})]
    engine = ScriptedEngine()
    seen: list[Any] = []
    engine.during = lambda obj: seen.append(
        kube.get(f"{roles_in(obj['metadata']['namespace'])}/reader")["metadata"].get("finalizers")
    )
    controller = Controller(
        api_client,
        CustomObjects(api_client, ROLES, "irsa-e2e"),
        engine.reconcile,
        engine.delete,
        identity="e2e-roles",
        label_selector=f"{RUN_LABEL}={run}",
        deletion_default="Delete",
    )
    controller.start()
    try:
        wait_for(controller.synced, timeout=10, what="the first list")
        for namespace in namespaces:  # the same name in two namespaces: two objects
            meta = {"name": "reader", "labels": {RUN_LABEL: run}}
            body = {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": ROLE_KIND,
                "metadata": meta,
                "spec": {"issuerRef": "main", "serviceAccounts": [{"name": "app"}]},
            }
            kube.create(roles_in(namespace), body)
            role_objects.append(f"{roles_in(namespace)}/reader")
        for namespace in namespaces:
            path = f"{roles_in(namespace)}/reader"
            wait_for(lambda: kube.get(path).get("status"), timeout=10, what=f"the status of {path}")  # noqa: B023
            assert kube.get(path)["metadata"]["finalizers"] == [FINALIZER]  # no deletionPolicy: Delete
            found = kube.request(
                "GET", f"/api/v1/namespaces/{namespace}/events", params={"fieldSelector": "involvedObject.name=reader"}
            )["items"]
            assert [(e["reason"], e["involvedObject"]["namespace"]) for e in found] == [("Reconciled", namespace)]
            assert found[0]["involvedObject"]["kind"] == ROLE_KIND
        assert seen == [[FINALIZER], [FINALIZER]]  # on before the engine first ran, in each namespace

        first, second = namespaces
        kube.delete(f"{roles_in(first)}/reader")
        wait_for(lambda: not kube.exists(f"{roles_in(first)}/reader"), timeout=10, what="the object to go")
        (deleted,) = engine.calls_of("delete")
        assert deleted["metadata"]["namespace"] == first
        assert kube.get(f"{roles_in(second)}/reader")["metadata"]["finalizers"] == [FINALIZER]
        assert sorted(controller.cache.object_keys()) == [f"{second}/reader"]
    finally:
        controller.stop()
