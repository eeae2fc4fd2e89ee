"""Cluster-scoped custom objects as raw JSON: the status written whole without a precondition, the
finalizers changed only if nobody else changed them meanwhile, Events that never fail the work."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.kubeapi import FakeApiServer, FakeCluster
from webhook.kube import events
from webhook.kube.customobjects import Conflict, CustomObjects, CustomResource
from webhook.kube.reflector import ListWatch

WIDGETS = CustomResource("example.com", "v1", "widgets")
COLLECTION = "/apis/example.com/v1/widgets"
OURS = "example.com/ours"


def widget(name: str, finalizers: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if finalizers is not None:
        meta["finalizers"] = finalizers
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta, "spec": spec}


class Uncounted:
    def inc(self, amount: float = 1) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer(FakeCluster()) as running:
        yield running


@pytest.fixture
def objects(server: FakeApiServer, tmp_path: Path) -> CustomObjects:
    return CustomObjects(server.api_client(tmp_path), WIDGETS, "test-manager")


def stored(server: FakeApiServer, name: str) -> dict[str, Any] | None:
    return server.cluster.store.get(COLLECTION, name)


def writes(server: FakeApiServer) -> list[Any]:
    return [r for r in server.cluster.requests if r.method != "GET"]


def test_get_reads_the_object_or_none(server: FakeApiServer, objects: CustomObjects) -> None:
    server.cluster.store.put(COLLECTION, widget("a", size=1))
    found = objects.get("a")
    assert found is not None
    assert found["spec"] == {"size": 1}
    assert objects.get("b") is None


def test_the_list_call_serves_the_reflector(server: FakeApiServer, objects: CustomObjects) -> None:
    server.cluster.store.put(COLLECTION, widget("a"))
    server.cluster.store.put(COLLECTION, widget("b"))
    listed = threading.Event()
    names: list[str] = []

    class Widgets(ListWatch[str]):
        def _read(self, obj: dict[str, Any]) -> str:
            name: str = obj["metadata"]["name"]
            return name

        def _replace(self, items: list[str], resource_version: str) -> None:
            names.extend(items)
            listed.set()

        def _apply(self, kind: str, obj: Any, resource_version: str) -> None:
            pass

    counter = Uncounted()
    reflector = Widgets(
        objects.list_call(),
        restarts=dict.fromkeys(("closed", "read_timeout", "gone", "error"), counter),
        parse_errors={"list": counter, "watch": counter},
    )
    reflector.start()
    try:
        assert listed.wait(5)
    finally:
        reflector.stop()
    assert names == ["a", "b"]
    assert server.cluster.requests[0].path == COLLECTION


def test_the_list_call_takes_a_label_selector(server: FakeApiServer, objects: CustomObjects) -> None:
    for name, team in (("a", "red"), ("b", "blue"), ("c", "red")):
        server.cluster.store.put(COLLECTION, dict(widget(name), metadata={"name": name, "labels": {"team": team}}))
    listed = objects.list_call("team=red")(limit=16, _preload_content=False)
    assert [item["metadata"]["name"] for item in json.loads(listed.data)["items"]] == ["a", "c"]
    assert server.cluster.requests[-1].query["labelSelector"] == "team=red"
    everything = objects.list_call()(limit=16, _preload_content=False)
    assert len(json.loads(everything.data)["items"]) == 3


def test_the_status_is_replaced_whole_without_a_precondition(server: FakeApiServer, objects: CustomObjects) -> None:
    server.cluster.store.put(COLLECTION, widget("a", size=1))
    objects.write_status("a", {"observedGeneration": 1, "providerARN": "arn:1", "conditions": []})
    # A spec edit lands between our read and our write: the status write must not fail for it.
    current = stored(server, "a")
    assert current is not None
    server.cluster.store.handle("PUT", f"{COLLECTION}/a", {}, dict(current, spec={"size": 2}), "application/json")
    written = objects.write_status("a", {"observedGeneration": 2})
    assert written is not None
    assert written["status"] == {"observedGeneration": 2}  # providerARN and conditions gone: replaced whole
    final = stored(server, "a")
    assert final is not None
    assert final["status"] == {"observedGeneration": 2}
    assert final["spec"] == {"size": 2}
    patch = writes(server)[-1]
    assert patch.path == f"{COLLECTION}/a/status"
    assert patch.headers["Content-Type"] == "application/json-patch+json"
    assert patch.query["fieldManager"] == "test-manager"
    assert not any(op["op"] == "test" for op in patch.body)


def test_the_status_of_a_deleted_object_is_none(objects: CustomObjects) -> None:
    assert objects.write_status("gone", {"observedGeneration": 1}) is None


def test_a_finalizer_is_added_to_an_object_without_any(server: FakeApiServer, objects: CustomObjects) -> None:
    obj = server.cluster.store.put(COLLECTION, widget("a"))
    written = objects.add_finalizer(obj, OURS)
    assert written["metadata"]["finalizers"] == [OURS]
    final = stored(server, "a")
    assert final is not None
    assert final["metadata"]["finalizers"] == [OURS]


def test_a_finalizer_is_appended_after_the_others(server: FakeApiServer, objects: CustomObjects) -> None:
    obj = server.cluster.store.put(COLLECTION, widget("a", ["theirs"]))
    assert objects.add_finalizer(obj, OURS)["metadata"]["finalizers"] == ["theirs", OURS]


def test_a_finalizer_already_there_is_not_written_again(server: FakeApiServer, objects: CustomObjects) -> None:
    obj = server.cluster.store.put(COLLECTION, widget("a", [OURS]))
    assert objects.add_finalizer(obj, OURS) is obj
    assert writes(server) == []


def test_adding_conflicts_when_the_finalizers_changed_meanwhile(server: FakeApiServer, objects: CustomObjects) -> None:
    obj = server.cluster.store.put(COLLECTION, widget("a", ["theirs"]))
    current = stored(server, "a")
    assert current is not None
    current["metadata"]["finalizers"] = ["theirs", "another"]
    server.cluster.store.handle("PUT", f"{COLLECTION}/a", {}, current, "application/json")
    with pytest.raises(Conflict, match="HTTP 422"):
        objects.add_finalizer(obj, OURS)
    final = stored(server, "a")
    assert final is not None
    assert final["metadata"]["finalizers"] == ["theirs", "another"]  # nobody's finalizer lost


def test_adding_the_first_conflicts_when_the_object_changed_meanwhile(
    server: FakeApiServer, objects: CustomObjects
) -> None:
    obj = server.cluster.store.put(COLLECTION, widget("a"))
    current = stored(server, "a")
    assert current is not None
    current["metadata"]["finalizers"] = ["theirs"]
    server.cluster.store.handle("PUT", f"{COLLECTION}/a", {}, current, "application/json")
    with pytest.raises(Conflict):
        objects.add_finalizer(obj, OURS)
    final = stored(server, "a")
    assert final is not None
    assert final["metadata"]["finalizers"] == ["theirs"]


def test_only_our_finalizer_is_removed(server: FakeApiServer, objects: CustomObjects) -> None:
    obj = server.cluster.store.put(COLLECTION, widget("a", ["first", OURS, "last"]))
    written = objects.remove_finalizer(obj, OURS)
    assert written is not None
    assert written["metadata"]["finalizers"] == ["first", "last"]


def test_removing_conflicts_when_ours_moved_meanwhile(server: FakeApiServer, objects: CustomObjects) -> None:
    obj = server.cluster.store.put(COLLECTION, widget("a", ["first", OURS]))
    current = stored(server, "a")
    assert current is not None
    current["metadata"]["finalizers"] = [OURS]  # "first" removed by its controller meanwhile
    server.cluster.store.handle("PUT", f"{COLLECTION}/a", {}, current, "application/json")
    with pytest.raises(Conflict):
        objects.remove_finalizer(obj, OURS)


def test_removing_the_last_finalizer_of_a_deleted_object_lets_it_go(
    server: FakeApiServer, objects: CustomObjects
) -> None:
    server.cluster.store.put(COLLECTION, widget("a", [OURS]))
    server.cluster.store.handle("DELETE", f"{COLLECTION}/a", {}, None, "")
    deleting = objects.get("a")
    assert deleting is not None
    assert deleting["metadata"]["deletionTimestamp"]
    objects.remove_finalizer(deleting, OURS)
    assert objects.get("a") is None
    assert objects.remove_finalizer(deleting, OURS) is None  # already gone: nothing to conflict with


def test_an_event_regards_the_object_and_names_the_controller(server: FakeApiServer, tmp_path: Path) -> None:
    obj = server.cluster.store.put(COLLECTION, widget("a"))
    assert events.record(
        server.api_client(tmp_path), obj, "Warning", "Failed", "x" * 2000, controller="c", instance="i"
    )
    (request,) = [r for r in server.cluster.requests if r.method == "POST" and "events" in r.path]
    assert request.path == "/apis/events.k8s.io/v1/namespaces/default/events"  # cluster-scoped: default
    body = request.body
    assert body["regarding"] == {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "name": "a",
        "uid": obj["metadata"]["uid"],
        "resourceVersion": obj["metadata"]["resourceVersion"],
    }
    assert (body["type"], body["reason"], body["reportingController"], body["reportingInstance"]) == (
        "Warning",
        "Failed",
        "c",
        "i",
    )
    assert len(body["note"]) == events.NOTE_MAX
    assert body["metadata"]["name"].startswith("a.")
    assert body["eventTime"].endswith("Z")
    assert len(body["eventTime"]) == len("2026-01-01T00:00:00.000000Z")


def test_an_event_that_cannot_be_written_is_logged_not_raised(
    server: FakeApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.cluster.fail["/apis/events.k8s.io/v1/namespaces/default/events"] = 403
    obj = widget("a")
    assert not events.record(server.api_client(tmp_path), obj, "Normal", "Ready", "ok", controller="c", instance="i")
    assert "cannot record an event about Widget a (Ready): HTTP 403" in caplog.text


def test_micro_time_is_rfc3339_with_microseconds() -> None:
    from datetime import UTC, datetime

    assert events.micro_time(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2026-01-02T03:04:05.000006Z"
    assert json.dumps(events.micro_time())  # a plain string


# -- namespaced kinds ----------------------------------------------------------------------------------
GADGETS = CustomResource("example.com", "v1", "gadgets", kind="Gadget", namespaced=True)


def gadget(namespace: str, name: str, finalizers: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    obj = dict(widget(name, finalizers, **spec), kind="Gadget")
    obj["metadata"]["namespace"] = namespace
    return obj


def gadgets_in(namespace: str) -> str:
    return f"/apis/example.com/v1/namespaces/{namespace}/gadgets"


@pytest.fixture
def namespaced(server: FakeApiServer, tmp_path: Path) -> CustomObjects:
    return CustomObjects(server.api_client(tmp_path), GADGETS, "test-manager")


def test_keys_and_paths_of_both_scopes() -> None:
    assert WIDGETS.key(widget("a")) == "a"
    assert WIDGETS.object_path("a") == f"{COLLECTION}/a"
    assert WIDGETS.label == "widgets"  # no kind given: the plural names them
    assert GADGETS.key(gadget("team-a", "x")) == "team-a/x"
    assert GADGETS.object_path("team-a/x") == "/apis/example.com/v1/namespaces/team-a/gadgets/x"
    assert GADGETS.path == "/apis/example.com/v1/gadgets"  # the list and watch span every namespace
    assert GADGETS.label == "Gadget"


@pytest.mark.parametrize(
    ("resource", "bad_key", "message"),
    [
        pytest.param(WIDGETS, "team-a/x", "is not the name of a cluster-scoped widgets", id="cluster-with-namespace"),
        pytest.param(GADGETS, "x", "is not namespace/name", id="namespaced-without"),
        pytest.param(GADGETS, "team-a/", "is not namespace/name", id="namespaced-empty-name"),
        pytest.param(GADGETS, "a/b/c", "is not namespace/name", id="namespaced-two-slashes"),
    ],
)
def test_a_key_of_the_wrong_shape_is_refused(resource: CustomResource, bad_key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resource.object_path(bad_key)


def test_a_namespaced_object_without_a_namespace_has_no_key() -> None:
    with pytest.raises(ValueError, match=r"metadata\.namespace is missing \(a Gadget is namespaced\)"):
        GADGETS.key(widget("x"))
    with pytest.raises(ValueError, match=r"metadata\.name is missing"):
        WIDGETS.key({"metadata": {}})


def test_namespaced_objects_are_read_and_written_in_their_namespace(
    server: FakeApiServer, namespaced: CustomObjects
) -> None:
    one = server.cluster.store.put(gadgets_in("team-a"), gadget("team-a", "x", size=1))
    server.cluster.store.put(gadgets_in("team-b"), gadget("team-b", "x", size=2))
    found = namespaced.get("team-b/x")
    assert found is not None
    assert found["spec"] == {"size": 2}  # the same name in another namespace is another object
    assert namespaced.get("team-c/x") is None
    written = namespaced.add_finalizer(one, OURS)
    assert written["metadata"]["finalizers"] == [OURS]
    assert namespaced.write_status("team-a/x", {"observedGeneration": 1}) is not None
    stored_a = server.cluster.store.get(gadgets_in("team-a"), "x")
    stored_b = server.cluster.store.get(gadgets_in("team-b"), "x")
    assert stored_a is not None
    assert stored_b is not None
    assert (stored_a["metadata"]["finalizers"], stored_a["status"]) == ([OURS], {"observedGeneration": 1})
    assert "finalizers" not in stored_b["metadata"]
    assert "status" not in stored_b
    assert [r.path for r in writes(server)] == [
        "/apis/example.com/v1/namespaces/team-a/gadgets/x",
        "/apis/example.com/v1/namespaces/team-a/gadgets/x/status",
    ]
    assert namespaced.remove_finalizer(written, OURS) is not None


def test_the_list_call_of_a_namespaced_kind_spans_every_namespace(
    server: FakeApiServer, namespaced: CustomObjects
) -> None:
    server.cluster.store.put(gadgets_in("team-a"), gadget("team-a", "x"))
    server.cluster.store.put(gadgets_in("team-b"), gadget("team-b", "y"))
    server.cluster.store.put(COLLECTION, widget("not-a-gadget"))
    listed = namespaced.list_call()(limit=16, _preload_content=False)
    items = json.loads(listed.data)["items"]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items] == [("team-a", "x"), ("team-b", "y")]
    assert server.cluster.requests[-1].path == "/apis/example.com/v1/gadgets"


def test_an_event_about_a_namespaced_object_is_written_in_its_namespace(server: FakeApiServer, tmp_path: Path) -> None:
    obj = server.cluster.store.put(gadgets_in("team-a"), gadget("team-a", "x"))
    assert events.record(server.api_client(tmp_path), obj, "Normal", "Ready", "ok", controller="c", instance="i")
    (request,) = [r for r in server.cluster.requests if r.method == "POST" and "events" in r.path]
    assert request.path == "/apis/events.k8s.io/v1/namespaces/team-a/events"
    assert request.body["metadata"]["namespace"] == "team-a"
    assert request.body["regarding"]["namespace"] == "team-a"
    assert (request.body["regarding"]["kind"], request.body["regarding"]["name"]) == ("Gadget", "x")


def test_an_event_about_a_namespaced_object_that_fails_names_it_with_its_namespace(
    server: FakeApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.cluster.fail["/apis/events.k8s.io/v1/namespaces/team-a/events"] = 403
    obj = gadget("team-a", "x")
    assert not events.record(server.api_client(tmp_path), obj, "Normal", "Ready", "ok", controller="c", instance="i")
    assert "cannot record an event about Gadget team-a/x (Ready): HTTP 403" in caplog.text
