"""The controller loop, driven one step at a time: the watch cache is fed as the watch would feed it,
the writes go to the fake API server, the engine is a stand-in (the loop's tests are about when it
calls the engine and what it writes, not about AWS)."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.support.engines import ScriptedEngine, outcome
from tests.support.kubeapi import FakeApiServer, FakeCluster
from tests.support.waits import wait_for
from webhook.kube.customobjects import CustomObjects, CustomResource
from webhook.provisioner.controller import FINALIZER, Controller, DeletionDefault, comparable
from webhook.provisioner.informer import OnChange
from webhook.provisioner.manager import ISSUERS, ROLES
from webhook.provisioner.model import API_GROUP, API_VERSION, ISSUER_KIND, ISSUER_PLURAL, Outcome
from webhook.provisioner.rolemodel import ROLE_KIND
from webhook.provisioner.workqueue import Backoff

COLLECTION = f"/apis/{API_GROUP}/{API_VERSION}/{ISSUER_PLURAL}"
EVENTS = "/apis/events.k8s.io/v1/namespaces/default/events"
RESYNC = 100.0
JSON = dict[str, Any]


def issuer(name: str, policy: str = "Retain", finalizers: list[str] | None = None) -> JSON:
    meta: JSON = {"name": name}
    if finalizers is not None:
        meta["finalizers"] = finalizers
    spec = {"issuerURL": f"https://{name}.example", "deletionPolicy": policy}
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": ISSUER_KIND, "metadata": meta, "spec": spec}


class Loop:
    """A controller that is not started: the test feeds its cache and runs it step by step."""

    def __init__(
        self,
        server: FakeApiServer,
        folder: Path,
        resource: CustomResource = ISSUERS,
        deletion_default: DeletionDefault = "Retain",
        on_change: OnChange | None = None,
    ) -> None:
        self.server = server
        self.store = server.cluster.store
        self.resource = resource
        self.engine = ScriptedEngine()
        self.leading = True
        api = server.api_client(folder)
        objects = CustomObjects(api, resource, "test")
        self.controller = Controller(
            api,
            objects,
            self.engine.reconcile,
            self.engine.delete,
            identity="test-replica",
            resync=RESYNC,
            is_leader=lambda: self.leading,
            backoff=Backoff(),
            deletion_default=deletion_default,
            on_change=on_change,
        )

    def create(self, obj: JSON) -> JSON:
        collection, _ = self._where(self.resource.key(obj))
        stored = self.store.put(collection, obj)
        self.controller.cache._apply("ADDED", stored, stored["metadata"]["resourceVersion"])
        return stored

    def deliver(self, key: str) -> JSON:
        """The watch delivers the object as stored now (MODIFIED)."""
        stored = self.stored(key)
        self.controller.cache._apply("MODIFIED", stored, stored["metadata"]["resourceVersion"])
        return stored

    def edit(self, key: str, **spec: Any) -> JSON:
        current = self.stored(key)
        current["spec"].update(spec)
        code, _ = self.store.handle("PUT", self.resource.object_path(key), {}, current, "application/json")
        assert code == 200
        return self.deliver(key)

    def delete(self, key: str) -> None:
        self.store.handle("DELETE", self.resource.object_path(key), {}, None, "")
        if self.store.get(*self._where(key)) is not None:
            self.deliver(key)

    def stored(self, key: str) -> JSON:
        found = self.store.get(*self._where(key))
        assert found is not None, key
        return found

    def _where(self, key: str) -> tuple[str, str]:
        collection, name = self.resource.object_path(key).rsplit("/", 1)
        return collection, name

    def step(self) -> str | None:
        return self.controller.step(timeout=0)

    def writes(self, suffix: str = "") -> list[Any]:
        return [r for r in self.server.cluster.requests if r.method != "GET" and r.path.endswith(suffix)]

    def status_writes(self) -> list[Any]:
        return self.writes("/status")

    def events(self) -> list[JSON]:
        return [r.body for r in self.server.cluster.requests if r.method == "POST" and r.path == EVENTS]


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    with FakeApiServer(FakeCluster()) as server:
        yield Loop(server, tmp_path)


def result_count(result: str) -> float:
    labels = {"kind": ISSUER_KIND, "result": result}
    return REGISTRY.get_sample_value("irsa_webhook_provisioner_reconciles_total", labels) or 0.0


def test_delete_policy_puts_the_finalizer_on_before_the_engine_first_runs(loop: Loop) -> None:
    seen: list[Any] = []
    loop.engine.during = lambda obj: seen.append(loop.stored("a")["metadata"].get("finalizers"))
    loop.create(issuer("a", "Delete"))
    assert loop.step() == "a"
    assert seen == [[FINALIZER]]  # stored before the engine made any AWS write
    (given,) = loop.engine.calls_of("reconcile")
    assert given["metadata"]["finalizers"] == [FINALIZER]


def test_retain_keeps_no_finalizer_and_removes_ours_alone(loop: Loop) -> None:
    loop.create(issuer("a", "Retain", ["other.io/keep", FINALIZER]))
    loop.step()
    assert loop.stored("a")["metadata"]["finalizers"] == ["other.io/keep"]
    loop.create(issuer("b", "Retain"))
    loop.step()
    assert "finalizers" not in loop.stored("b")["metadata"]
    assert not loop.writes(f"{COLLECTION}/b")  # no finalizer write at all


def test_a_policy_changed_to_retain_removes_our_finalizer(loop: Loop) -> None:
    loop.create(issuer("a", "Delete"))
    loop.step()
    loop.edit("a", deletionPolicy="Retain")
    loop.step()
    assert not loop.stored("a")["metadata"].get("finalizers")


def test_the_status_is_written_once_and_its_events_with_it(loop: Loop) -> None:
    loop.create(issuer("a"))
    loop.step()
    assert loop.stored("a")["status"]["conditions"][0]["status"] == "True"
    for _ in range(3):  # resyncs: the engine answers the same status, with a new lastTransitionTime
        loop.controller.queue.add("a")
        loop.step()
    assert len(loop.engine.calls_of("reconcile")) == 4
    assert len(loop.status_writes()) == 1
    assert [e["reason"] for e in loop.events()] == ["Reconciled"]
    (event,) = loop.events()
    assert event["regarding"]["name"] == "a"
    assert event["reportingController"] == "irsa-webhook.io/provisioner"
    assert event["reportingInstance"] == "test-replica"


def test_a_changed_status_is_written_with_the_events_of_the_change(loop: Loop) -> None:
    loop.create(issuer("a"))
    loop.step()
    loop.engine.script["a"] = lambda obj: outcome(obj, ready=False, retry="backoff", reason="Throttled")
    loop.controller.queue.add("a")
    loop.step()
    assert len(loop.status_writes()) == 2
    assert loop.stored("a")["status"]["conditions"][0]["reason"] == "Throttled"
    assert [(e["type"], e["reason"]) for e in loop.events()] == [("Normal", "Reconciled"), ("Warning", "Throttled")]


def test_in_sync_is_resynced_with_jitter(loop: Loop) -> None:
    before = result_count("success")
    loop.create(issuer("a"))
    loop.step()
    due = loop.controller.queue.scheduled("a")
    assert due is not None
    assert RESYNC * 0.9 - 1 <= due <= RESYNC * 1.1
    assert result_count("success") == before + 1
    last = REGISTRY.get_sample_value("irsa_webhook_provisioner_last_success_timestamp_seconds", {"kind": ISSUER_KIND})
    assert last is not None
    assert abs(last - time.time()) < 60


def test_resyncs_are_spread(loop: Loop) -> None:
    names = [f"i{n}" for n in range(6)]
    for name in names:
        loop.create(issuer(name))
        loop.step()
    due = {round(loop.controller.queue.scheduled(name) or 0.0, 1) for name in names}
    assert len(due) > 1


def test_a_new_generation_starts_the_backoff_over(loop: Loop) -> None:
    loop.engine.script["a"] = lambda obj: outcome(obj, ready=False, retry="backoff", reason="Throttled")
    loop.create(issuer("a"))
    for _ in range(4):
        loop.controller.queue.add("a")
        loop.step()
    loop.edit("a", issuerURL="https://new.example")
    loop.step()
    due = loop.controller.queue.scheduled("a")
    assert due is not None
    assert due <= 1


def test_retryable_failures_back_off_exponentially_then_success_resets(loop: Loop) -> None:
    before = result_count("retry")
    loop.engine.script["a"] = lambda obj: outcome(obj, ready=False, retry="backoff", reason="Throttled")
    loop.create(issuer("a"))
    ceilings = [1, 2, 4, 8]
    for ceiling in ceilings:
        assert loop.step() == "a"
        due = loop.controller.queue.scheduled("a")
        assert due is not None
        assert ceiling / 2 - 0.1 <= due <= ceiling
        loop.controller.queue.add("a")  # the test does not wait out the delay
    assert result_count("retry") == before + len(ceilings)
    del loop.engine.script["a"]
    loop.step()
    loop.engine.script["a"] = lambda obj: outcome(obj, ready=False, retry="backoff", reason="Throttled")
    loop.controller.queue.add("a")
    loop.step()
    due = loop.controller.queue.scheduled("a")
    assert due is not None
    assert due <= 1  # the success started the backoff over


def test_terminal_waits_until_the_generation_changes(loop: Loop) -> None:
    loop.engine.script["a"] = lambda obj: outcome(obj, ready=False, retry="terminal", reason="InvalidSpec")
    loop.create(issuer("a"))
    loop.step()
    assert loop.controller.queue.scheduled("a") is None  # no retry, no resync
    loop.deliver("a")  # our own status write comes back through the watch: same generation
    assert loop.step() is None
    loop.edit("a", issuerURL="https://fixed.example")
    assert loop.controller.queue.scheduled("a") == 0
    assert loop.step() == "a"
    assert [c["spec"]["issuerURL"] for c in loop.engine.calls_of("reconcile")] == [
        "https://a.example",
        "https://fixed.example",
    ]


def test_deletion_runs_the_engine_until_done_then_removes_the_finalizer(loop: Loop) -> None:
    loop.create(issuer("a", "Delete"))
    loop.step()
    loop.engine.delete_script["a"] = lambda obj: Outcome(status=None, retry="backoff", done=False, error="busy")
    loop.delete("a")
    assert loop.step() == "a"
    assert loop.stored("a")["metadata"]["finalizers"] == [FINALIZER]  # kept: not cleaned up yet
    due = loop.controller.queue.scheduled("a")
    assert due is not None
    assert due <= 1
    before = result_count("deleted")
    del loop.engine.delete_script["a"]
    loop.controller.queue.add("a")
    loop.step()
    assert len(loop.engine.calls_of("delete", "a")) == 2
    assert loop.store.get(COLLECTION, "a") is None  # finalizer removed: the object went
    assert result_count("deleted") == before + 1


def test_deletion_with_retain_removes_our_finalizer_without_calling_the_engine(loop: Loop) -> None:
    loop.create(issuer("a", "Retain", [FINALIZER]))
    loop.store.handle("DELETE", f"{COLLECTION}/a", {}, None, "")
    loop.deliver("a")
    loop.step()
    assert loop.engine.calls_of("delete") == []
    assert loop.store.get(COLLECTION, "a") is None


def test_a_deleting_object_without_our_finalizer_is_left_alone(loop: Loop) -> None:
    loop.create(issuer("a", "Delete", ["other.io/keep"]))
    loop.controller.queue.forget("a")
    loop.delete("a")
    loop.step()
    assert loop.engine.calls == []
    assert loop.writes(f"{COLLECTION}/a") == []


def test_not_leading_nothing_is_called_or_written_and_the_object_waits(loop: Loop) -> None:
    loop.leading = False
    loop.create(issuer("a", "Delete"))
    loop.step()
    assert loop.engine.calls == []
    assert loop.writes() == []
    assert loop.controller.queue.scheduled("a") == 0  # reconciled once this replica leads
    loop.leading = True
    loop.step()
    assert len(loop.engine.calls_of("reconcile")) == 1


def test_leadership_lost_during_the_engine_call_writes_nothing(loop: Loop) -> None:
    loop.create(issuer("a"))

    def lose(_: JSON) -> None:
        loop.leading = False

    loop.engine.during = lose
    loop.step()
    assert len(loop.engine.calls_of("reconcile")) == 1
    assert loop.status_writes() == []
    assert loop.events() == []
    assert loop.controller.queue.scheduled("a") == 0


def test_an_engine_exception_is_an_error_and_backs_off(loop: Loop) -> None:
    before = result_count("error")

    def broken(_: JSON) -> Outcome:
        raise RuntimeError("bug")

    loop.engine.script["a"] = broken
    loop.create(issuer("a"))
    loop.step()
    assert result_count("error") == before + 1
    due = loop.controller.queue.scheduled("a")
    assert due is not None
    assert 0 < due <= 1


def test_a_finalizer_conflict_is_read_again_and_retried(loop: Loop) -> None:
    stale = loop.create(issuer("a", "Delete", ["other.io/one"]))
    current = loop.stored("a")
    current["metadata"]["finalizers"] = ["other.io/one", "other.io/two"]  # written meanwhile, not yet seen
    loop.store.handle("PUT", f"{COLLECTION}/a", {}, current, "application/json")
    assert loop.controller.cache.get("a") == stale
    loop.step()
    assert loop.stored("a")["metadata"]["finalizers"] == ["other.io/one", "other.io/two", FINALIZER]
    assert len(loop.engine.calls_of("reconcile")) == 1


def test_an_object_gone_from_the_watch_is_forgotten(loop: Loop) -> None:
    loop.create(issuer("a"))
    obj = loop.stored("a")
    loop.controller.cache._apply("DELETED", obj, "9999")
    assert loop.controller.queue.scheduled("a") is None
    assert loop.step() is None


def test_a_relist_wakes_only_what_changed(loop: Loop) -> None:
    loop.create(issuer("a"))
    loop.create(issuer("b"))
    loop.step()
    loop.step()
    loop.controller.queue.forget("a")
    loop.controller.queue.forget("b")
    loop.edit("b", issuerURL="https://b2.example")
    listed = [loop.stored("a"), copy.deepcopy(loop.stored("b"))]
    loop.controller.cache._replace(listed, "9999")  # the watch expired: a full list
    assert loop.controller.queue.scheduled("a") is None
    assert loop.controller.queue.scheduled("b") == 0


def test_comparable_ignores_only_last_transition_time() -> None:
    one = {"observedGeneration": 1, "conditions": [{"type": "Ready", "lastTransitionTime": "t1"}]}
    two = {"observedGeneration": 1, "conditions": [{"type": "Ready", "lastTransitionTime": "t2"}]}
    assert comparable(one) == comparable(two)
    assert comparable(one) != comparable(dict(two, observedGeneration=2))
    assert comparable(None) != comparable(one)


def test_the_worker_reconciles_only_while_leading(tmp_path: Path) -> None:
    with FakeApiServer(FakeCluster()) as server:
        server.cluster.store.put(COLLECTION, issuer("a"))
        loop = Loop(server, tmp_path)
        loop.leading = False
        loop.controller.start()
        try:
            wait_for(loop.controller.synced, timeout=5, what="the first list")
            time.sleep(0.5)
            assert loop.engine.calls == []
            assert REGISTRY.get_sample_value("irsa_webhook_provisioner_leader") == 0
            assert REGISTRY.get_sample_value("irsa_webhook_provisioner_queue_depth", {"kind": ISSUER_KIND}) == 1
            loop.leading = True
            loop.controller.started_leading()
            wait_for(lambda: bool(loop.engine.calls_of("reconcile")), timeout=5, what="a reconcile")
            assert REGISTRY.get_sample_value("irsa_webhook_provisioner_leader") == 1
        finally:
            loop.controller.stop()


# -- a namespaced kind ---------------------------------------------------------------------------------
def role(namespace: str, name: str, **spec: Any) -> JSON:
    meta: JSON = {"name": name, "namespace": namespace}
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": ROLE_KIND, "metadata": meta, "spec": spec}


@pytest.fixture
def roles(tmp_path: Path) -> Iterator[Loop]:
    with FakeApiServer(FakeCluster()) as server:
        yield Loop(server, tmp_path, ROLES, deletion_default="Delete")


def role_results(result: str) -> float:
    labels = {"kind": ROLE_KIND, "result": result}
    return REGISTRY.get_sample_value("irsa_webhook_provisioner_reconciles_total", labels) or 0.0


def test_namespaced_objects_are_keyed_by_namespace_and_written_where_they_live(roles: Loop) -> None:
    roles.create(role("team-a", "reader"))
    roles.create(role("team-b", "reader"))  # the same name in another namespace: another object
    assert {roles.step(), roles.step()} == {"team-a/reader", "team-b/reader"}
    assert roles.step() is None
    for namespace in ("team-a", "team-b"):
        stored = roles.stored(f"{namespace}/reader")
        assert stored["metadata"]["finalizers"] == [FINALIZER]  # no deletionPolicy: the kind's default, Delete
        assert stored["status"]["conditions"][0]["status"] == "True"
    assert {r.path for r in roles.status_writes()} == {
        f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/irsaroles/reader/status"
        for namespace in ("team-a", "team-b")
    }
    posted = [r for r in roles.server.cluster.requests if r.method == "POST" and r.path.endswith("/events")]
    assert sorted((r.path, r.body["regarding"]["namespace"]) for r in posted) == [
        ("/apis/events.k8s.io/v1/namespaces/team-a/events", "team-a"),
        ("/apis/events.k8s.io/v1/namespaces/team-b/events", "team-b"),
    ]
    assert [o["metadata"]["namespace"] for o in roles.engine.calls_of("reconcile", "team-a/reader")] == ["team-a"]


def test_a_namespaced_object_is_cleaned_up_and_let_go_by_its_key(roles: Loop) -> None:
    roles.create(role("team-a", "reader"))
    roles.create(role("team-b", "reader"))
    roles.step()
    roles.step()
    before = role_results("deleted")
    roles.delete("team-a/reader")
    assert roles.step() == "team-a/reader"
    assert [o["metadata"]["namespace"] for o in roles.engine.calls_of("delete")] == ["team-a"]
    assert roles.store.get(f"/apis/{API_GROUP}/{API_VERSION}/namespaces/team-a/irsaroles", "reader") is None
    assert roles.stored("team-b/reader")["metadata"]["finalizers"] == [FINALIZER]
    assert role_results("deleted") == before + 1


def test_a_kind_whose_default_is_retain_keeps_no_finalizer_without_a_policy(loop: Loop) -> None:
    loop.create(dict(issuer("a"), spec={"issuerURL": "https://a.example"}))
    loop.step()
    assert "finalizers" not in loop.stored("a")["metadata"]


def test_an_explicit_retain_beats_the_kinds_default(roles: Loop) -> None:
    roles.create(role("team-a", "kept", deletionPolicy="Retain"))
    roles.step()
    assert "finalizers" not in roles.stored("team-a/kept")["metadata"]


def test_wake_where_queues_the_objects_asked_for_with_their_backoff_started_over(roles: Loop) -> None:
    waiting = lambda obj: outcome(obj, ready=False, retry="backoff", reason="IssuerNotReady")  # noqa: E731
    for name, ref in (("one", "main"), ("two", "main"), ("other", "second")):
        roles.engine.script[f"team-a/{name}"] = waiting
        roles.create(role("team-a", name, issuerRef=ref))
    for _ in range(3):
        for _ in range(3):
            roles.step()
        for name in ("one", "two", "other"):
            roles.controller.queue.add(f"team-a/{name}")  # the test does not wait out the backoff
    for _ in range(3):
        roles.step()
    assert (roles.controller.queue.scheduled("team-a/one") or 0) > 1  # backed off after five failures
    woken = roles.controller.wake_where(lambda obj: obj["spec"]["issuerRef"] == "main")
    assert woken == ["team-a/one", "team-a/two"]
    assert roles.controller.queue.scheduled("team-a/one") == 0
    assert (roles.controller.queue.scheduled("team-a/other") or 0) > 1
    roles.step()
    due = roles.controller.queue.scheduled("team-a/one")
    assert due is not None
    assert due <= 1  # the next failure waits as a first one does


def test_the_listener_is_told_every_change_and_our_own_writes_at_once(tmp_path: Path) -> None:
    told: list[tuple[str, Any, Any]] = []
    with FakeApiServer(FakeCluster()) as server:
        loop = Loop(server, tmp_path, on_change=lambda key, old, new: told.append((key, old, new)))
        loop.create(issuer("a"))
        assert [(key, old) for key, old, _ in told] == [("a", None)]
        loop.step()  # writes the status: the listener hears of it before any watch event brings it back
        key, old, new = told[-1]
        assert key == "a"
        assert old is not None
        assert "status" not in old
        assert new["status"]["conditions"][0]["status"] == "True"
        loop.store.handle("DELETE", "/apis/irsa-webhook.io/v1alpha1/irsaissuers/a", {}, None, "")
        loop.controller.cache._apply("DELETED", new, "9999")
        assert told[-1][0] == "a"
        assert told[-1][2] is None


def test_each_kind_counts_its_own_reconciles(loop: Loop) -> None:
    issuers_before, roles_before = result_count("success"), role_results("success")
    loop.create(issuer("a"))
    loop.step()
    assert (result_count("success"), role_results("success")) == (issuers_before + 1, roles_before)
