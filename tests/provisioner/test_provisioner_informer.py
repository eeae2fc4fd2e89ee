"""The controller's watch cache: objects held by key (namespaced ones by ``namespace/name``), our own
writes told as changes, and a kind the API server does not serve (its CRD not installed, or removed)
waited for quietly instead of failing every few seconds."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.kubeapi import FakeApiServer, FakeCluster
from tests.support.waits import wait_for
from webhook.kube.customobjects import CustomObjects, CustomResource
from webhook.provisioner import informer
from webhook.provisioner.informer import ObjectCache

GADGETS = CustomResource("example.com", "v1", "gadgets", kind="Gadget", namespaced=True)
COLLECTION = "/apis/example.com/v1/gadgets"  # every namespace's: the list and watch path
JSON = dict[str, Any]


class Uncounted:
    def inc(self, amount: float = 1) -> None:
        pass


def gadget(namespace: str, name: str) -> JSON:
    return {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": name, "namespace": namespace}}


class Watched:
    """A cache of gadgets on the fake API server, with every change it told."""

    def __init__(self, server: FakeApiServer, folder: Path) -> None:
        self.server = server
        self.told: list[tuple[str, JSON | None, JSON | None]] = []
        objects = CustomObjects(server.api_client(folder), GADGETS, "test")
        counter = Uncounted()
        self.cache = ObjectCache(
            objects.list_call(),
            lambda key, old, new: self.told.append((key, old, new)),
            kind="gadgets",
            restarts=dict.fromkeys(("closed", "read_timeout", "gone", "error"), counter),
            parse_errors={"list": counter, "watch": counter},
            key=objects.key,
        )


@pytest.fixture
def watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Watched]:
    # Seconds in production; the test does not wait them out.
    monkeypatch.setattr(informer, "NOT_SERVED_RETRY_START", 0.02)
    monkeypatch.setattr(informer, "NOT_SERVED_RETRY_MAX", 0.05)
    with FakeApiServer(FakeCluster()) as server:
        made = Watched(server, tmp_path)
        yield made
        made.cache.stop()


def lists(server: FakeApiServer) -> int:
    return sum(1 for r in server.cluster.requests if r.path == COLLECTION and "watch" not in r.query)


def test_namespaced_objects_are_held_by_namespace_and_name(watched: Watched) -> None:
    for namespace in ("team-b", "team-a"):
        watched.server.cluster.store.put(f"/apis/example.com/v1/namespaces/{namespace}/gadgets", gadget(namespace, "x"))
    watched.cache.start()
    wait_for(watched.cache.synced.is_set, timeout=5, what="the first list")
    assert watched.cache.object_keys() == ["team-a/x", "team-b/x"]
    held = watched.cache.get("team-b/x")
    assert held is not None
    assert held["metadata"]["namespace"] == "team-b"
    assert sorted(key for key, old, _ in watched.told if old is None) == ["team-a/x", "team-b/x"]
    assert watched.cache.served is True


def test_our_own_write_is_held_and_told_only_over_the_version_it_was_computed_from(watched: Watched) -> None:
    first = dict(gadget("team-a", "x"), metadata={"name": "x", "namespace": "team-a", "resourceVersion": "1"})
    watched.cache._apply("ADDED", first, "1")
    written = dict(first, metadata=dict(first["metadata"], resourceVersion="2"), status={"ready": True})
    watched.cache.remember(written, "1")
    assert watched.told[-1] == ("team-a/x", first, written)
    newer = dict(written, metadata=dict(written["metadata"], resourceVersion="3"))
    watched.cache._apply("MODIFIED", newer, "3")
    told = len(watched.told)
    watched.cache.remember(dict(written, status={"ready": False}), "2")  # computed from a version gone by
    assert watched.cache.get("team-a/x") == newer
    assert len(watched.told) == told


def test_a_kind_not_served_is_waited_for_logged_once_and_listed_when_it_comes(
    watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "irsa_webhook")
    watched.server.cluster.fail[COLLECTION] = 404
    watched.server.cluster.store.put("/apis/example.com/v1/namespaces/team-a/gadgets", gadget("team-a", "x"))
    watched.cache.start()
    wait_for(lambda: lists(watched.server) >= 4, timeout=5, what="the kind to be asked for again")
    assert watched.cache.served is False
    assert watched.cache.settled()  # nothing to wait for: readiness does not hang on a missing CRD
    assert not watched.cache.synced.is_set()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "gadgets are not served by the API server (HTTP 404" in warnings[0].getMessage()
    assert "CustomResourceDefinition installed?" in warnings[0].getMessage()

    del watched.server.cluster.fail[COLLECTION]  # the CRD is installed
    wait_for(watched.cache.synced.is_set, timeout=5, what="the list once served")
    assert watched.cache.served is True
    assert watched.cache.object_keys() == ["team-a/x"]
    assert "gadgets are served now" in caplog.text


def test_the_kind_is_served_by_the_time_synced_is_set(watched: Watched, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoever waits on ``synced`` (readiness, the CRD-installed path) must find ``served`` True at
    once, not a moment later (a race CI once lost)."""
    at_set: list[bool | None] = []
    original = watched.cache.synced.set

    def recording_set() -> None:
        at_set.append(watched.cache.served)
        original()

    monkeypatch.setattr(watched.cache.synced, "set", recording_set)
    watched.server.cluster.fail[COLLECTION] = 404
    watched.cache.start()
    wait_for(lambda: watched.cache.served is False, timeout=5, what="the kind to be found missing")
    del watched.server.cluster.fail[COLLECTION]
    wait_for(watched.cache.synced.is_set, timeout=5, what="the list once served")
    assert at_set == [True]


def test_a_kind_that_goes_while_watched_is_waited_for_again(watched: Watched, caplog: pytest.LogCaptureFixture) -> None:
    watched.cache.start()
    wait_for(watched.cache.synced.is_set, timeout=5, what="the first list")
    watched.server.cluster.fail[COLLECTION] = 404  # the CRD is deleted: the next watch and list answer 404
    wait_for(lambda: watched.cache.served is False, timeout=10, what="the kind to be seen gone")
    assert watched.cache.resource_version is None  # listed again, not watched from a version of a kind gone
    del watched.server.cluster.fail[COLLECTION]
    wait_for(lambda: watched.cache.served is True, timeout=5, what="the kind back")
    assert sum("are not served" in r.getMessage() for r in caplog.records) == 1


def test_a_stop_while_waiting_for_the_kind_ends_the_loop(watched: Watched) -> None:
    watched.server.cluster.fail[COLLECTION] = 404
    watched.cache.start()
    wait_for(lambda: watched.cache.served is False, timeout=5, what="the kind to be found missing")
    watched.cache.stop(timeout=5)
    thread = watched.cache._thread
    assert thread is not None
    assert not thread.is_alive()
