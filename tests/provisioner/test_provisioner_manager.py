"""The three kinds in one process: roles woken when the issuer they name changes (and only then),
issuers still followed when only roles run, one readiness that a missing CRD does not hold back, one
leadership for every kind. Engines are stand-ins: what is tested is the wiring, not AWS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.engines import ScriptedEngine, outcome
from tests.support.kubeapi import FakeApiServer, FakeCluster
from tests.support.waits import wait_for
from webhook.provisioner.manager import (
    CLUSTER_ROLES,
    ISSUERS,
    KINDS,
    RESOURCES,
    ROLE_KINDS,
    ROLES,
    Manager,
    issuer_facts,
    issuer_ref,
)
from webhook.provisioner.model import API_GROUP, API_VERSION, ISSUER_KIND
from webhook.provisioner.rolemodel import CLUSTER_ROLE_KIND, ROLE_KIND

JSON = dict[str, Any]
VERSION = f"{API_GROUP}/{API_VERSION}"
ROLES_IN = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/team-a/irsaroles"


def issuer(name: str, ready: str | None = None, provider: str | None = None, **meta: Any) -> JSON:
    obj: JSON = {"apiVersion": VERSION, "kind": ISSUER_KIND, "metadata": {"name": name, "generation": 1, **meta}}
    obj["spec"] = {}
    if ready is not None:
        status: JSON = {"conditions": [{"type": "Ready", "status": ready}], "issuerURL": f"https://{name}.example"}
        if provider:
            status["providerARN"] = provider
        obj["status"] = status
    return obj


def role(name: str, ref: Any, namespace: str | None = "team-a") -> JSON:
    meta: JSON = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    kind = ROLE_KIND if namespace else CLUSTER_ROLE_KIND
    return {"apiVersion": VERSION, "kind": kind, "metadata": meta, "spec": {"issuerRef": ref}}


class Process:
    """A manager of the kinds asked for, each with a stand-in engine."""

    def __init__(self, server: FakeApiServer, folder: Path, kinds: tuple[str, ...] = KINDS) -> None:
        self.server = server
        self.leading = True
        self.manager = Manager(
            server.api_client(folder), "test", identity="test", resync=3600.0, is_leader=lambda: self.leading
        )
        self.engines = {kind: ScriptedEngine() for kind in kinds}
        for kind in kinds:
            self.manager.run(kind, self.engines[kind])

    def feed(self, kind: str, obj: JSON, event: str = "ADDED") -> None:
        """The watch of ``kind`` delivers ``obj`` (stored first when ADDED: the loop writes to it)."""
        if event == "ADDED":
            resource = RESOURCES[kind]
            obj = self.server.cluster.store.put(resource.object_path(resource.key(obj)).rsplit("/", 1)[0], obj)
        self.manager.controllers[kind].cache._apply(event, obj, "1")

    def due(self, kind: str, key: str) -> float | None:
        return self.manager.controllers[kind].queue.scheduled(key)

    def drain(self, kinds: tuple[str, ...] = ROLE_KINDS) -> None:
        """The queues of ``kinds`` emptied (their objects wait, terminally, for a change)."""
        for kind in kinds:
            controller = self.manager.controllers[kind]
            self.engines[kind].script.update(
                {
                    key: lambda obj: outcome(obj, ready=False, retry="terminal", reason="Waiting")
                    for key in controller.cache.object_keys()
                }
            )
            while controller.step(timeout=0) is not None:
                pass


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer(FakeCluster()) as running:
        yield running


def test_issuer_facts_are_what_a_role_takes_from_its_issuer() -> None:
    assert issuer_facts(None) is None
    assert issuer_facts(issuer("main")) == (None, None, None)
    assert issuer_facts(issuer("main", "True", "arn:p")) == ("True", "arn:p", "https://main.example")
    assert issuer_facts(dict(issuer("main"), status={"conditions": "broken"})) == (None, None, None)
    assert issuer_ref(role("r", "main")) == "main"
    assert issuer_ref(role("r", {"name": "main"})) == "main"
    assert issuer_ref(role("r", None)) is None
    assert issuer_ref({"spec": "broken"}) is None


def test_an_issuer_change_wakes_the_roles_of_both_kinds_that_name_it(server: FakeApiServer, tmp_path: Path) -> None:
    process = Process(server, tmp_path)
    process.feed(ROLE_KIND, role("r1", "main"))
    process.feed(ROLE_KIND, role("r2", "other"))
    process.feed(CLUSTER_ROLE_KIND, role("c1", {"name": "main"}, namespace=None))
    process.feed(ISSUER_KIND, issuer("main"))
    process.drain()
    assert process.due(ROLE_KIND, "team-a/r1") is None

    process.feed(ISSUER_KIND, issuer("main", "True", "arn:aws:iam::1:oidc-provider/main.example"), "MODIFIED")
    assert process.due(ROLE_KIND, "team-a/r1") == 0
    assert process.due(CLUSTER_ROLE_KIND, "c1") == 0
    assert process.due(ROLE_KIND, "team-a/r2") is None  # names another issuer
    process.drain()

    labelled = issuer("main", "True", "arn:aws:iam::1:oidc-provider/main.example", labels={"a": "b"})
    process.feed(ISSUER_KIND, labelled, "MODIFIED")
    assert process.due(ROLE_KIND, "team-a/r1") is None  # nothing a role takes from it changed
    process.feed(ISSUER_KIND, issuer("main", "True", "arn:aws:iam::1:oidc-provider/moved.example"), "MODIFIED")
    assert process.due(ROLE_KIND, "team-a/r1") == 0  # a new provider: the trust policy changes
    process.drain()
    process.feed(ISSUER_KIND, issuer("main", "True", "arn:aws:iam::1:oidc-provider/moved.example"), "DELETED")
    assert process.due(CLUSTER_ROLE_KIND, "c1") == 0  # gone: its roles say so at once


def test_the_role_engines_read_the_issuer_cache(server: FakeApiServer, tmp_path: Path) -> None:
    process = Process(server, tmp_path)
    assert process.manager.issuer("main") is None
    process.feed(ISSUER_KIND, issuer("main", "True"))
    found = process.manager.issuer("main")
    assert found is not None
    assert found["status"]["conditions"][0]["status"] == "True"


def test_roles_run_without_issuers_still_follow_them(server: FakeApiServer, tmp_path: Path) -> None:
    server.cluster.store.put(ISSUERS.path, issuer("main", "False"))
    server.cluster.store.put(ROLES_IN, role("r1", "main"))
    process = Process(server, tmp_path, kinds=(ROLE_KIND,))
    process.leading = False
    process.manager.start()
    try:
        wait_for(lambda: process.manager.ready()[0], timeout=5, what="ready")
        found = process.manager.issuer("main")
        assert found is not None
        assert found["status"]["conditions"][0]["status"] == "False"
        assert ISSUER_KIND not in process.manager.controllers  # watched, never reconciled
        view = process.manager._issuer_view
        assert view is not None
        process.manager.controllers[ROLE_KIND].queue.forget("team-a/r1")
        view._apply("MODIFIED", issuer("main", "True", "arn:p"), "2")
        assert process.due(ROLE_KIND, "team-a/r1") == 0
    finally:
        process.manager.stop()


def test_ready_once_every_kind_is_listed_or_known_not_served(server: FakeApiServer, tmp_path: Path) -> None:
    server.cluster.fail[CLUSTER_ROLES.path] = 404  # that CRD is not installed
    server.cluster.fail[ROLES.path] = 500  # that list fails for now
    process = Process(server, tmp_path)
    process.manager.start()
    try:
        wait_for(lambda: process.manager.not_served() == ["clusterirsaroles"], timeout=5, what="the missing CRD")
        assert process.manager.ready() == (False, "the first list of irsaroles has not completed")
        del server.cluster.fail[ROLES.path]
        wait_for(lambda: process.manager.ready()[0], timeout=10, what="ready without the missing CRD")
        assert process.manager.ready() == (True, "")
    finally:
        process.manager.stop()


def test_one_leadership_for_every_kind(server: FakeApiServer, tmp_path: Path) -> None:
    server.cluster.store.put(ISSUERS.path, issuer("main"))
    server.cluster.store.put(ROLES_IN, role("r1", "main"))
    server.cluster.store.put(CLUSTER_ROLES.path, role("c1", "main", namespace=None))
    process = Process(server, tmp_path)
    process.leading = False
    process.manager.start()
    try:
        wait_for(lambda: process.manager.ready()[0], timeout=5, what="ready")
        threading_pause()
        assert all(not engine.calls for engine in process.engines.values())
        process.leading = True
        process.manager.started_leading()
        for kind, key in ((ISSUER_KIND, "main"), (ROLE_KIND, "team-a/r1"), (CLUSTER_ROLE_KIND, "c1")):
            engine = process.engines[kind]
            wait_for(lambda: bool(engine.calls_of("reconcile", key)), timeout=5, what=kind)  # noqa: B023
        process.manager.stopped_leading()
        assert all(not c._leading.is_set() for c in process.manager.controllers.values())
    finally:
        process.manager.stop()


def test_a_key_change_queues_the_issuers_alone(server: FakeApiServer, tmp_path: Path) -> None:
    process = Process(server, tmp_path)
    process.feed(ISSUER_KIND, issuer("main"))
    process.feed(ROLE_KIND, role("r1", "elsewhere"))
    process.drain(KINDS)
    process.manager.reconcile_issuers()
    assert process.due(ISSUER_KIND, "main") == 0
    assert process.due(ROLE_KIND, "team-a/r1") is None


def test_a_kind_is_run_once(server: FakeApiServer, tmp_path: Path) -> None:
    process = Process(server, tmp_path, kinds=(ISSUER_KIND,))
    with pytest.raises(ValueError, match="IRSAIssuer is run already"):
        process.manager.run(ISSUER_KIND, ScriptedEngine())


def threading_pause(seconds: float = 0.3) -> None:
    """Long enough for a worker that would wrongly run to have run."""
    import threading

    threading.Event().wait(seconds)
