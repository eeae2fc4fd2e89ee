"""``irsa-webhook controller``: its flags, checked with one-line messages, and whole runs against the
fake API server with stand-in engines (the command's wiring: the three kinds, one Lease, the watches,
probes, metrics, stop; a role following its issuer; a CRD not installed)."""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.engines import RoleEngines, ScriptedEngine, outcome
from tests.support.kubeapi import FakeApiServer, FakeCluster
from tests.support.ports import free_port
from tests.support.waits import wait_for
from webhook.cli import build_parser, main
from webhook.commands import controller
from webhook.commands.common import Exit
from webhook.provisioner.model import API_GROUP, API_VERSION, ISSUER_KIND, ISSUER_PLURAL
from webhook.provisioner.rolemodel import CLUSTER_ROLE_KIND, CLUSTER_ROLE_PLURAL, ROLE_KIND, ROLE_PLURAL, Guardrails

COLLECTION = f"/apis/{API_GROUP}/{API_VERSION}/{ISSUER_PLURAL}"
ROLES_IN = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/%s/{ROLE_PLURAL}"
CLUSTER_ROLES = f"/apis/{API_GROUP}/{API_VERSION}/{CLUSTER_ROLE_PLURAL}"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/irsa-webhook/leases"


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A run sets up the process's JSON logging (root handler, levels); the next tests must not inherit it."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("kubernetes", "urllib3")}
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


def parse(*argv: str) -> Any:
    return build_parser().parse_args(["controller", *argv])


BAD = [
    pytest.param([], "--cluster-name is required", id="no-cluster-name"),
    pytest.param(["--cluster-name", "c", "--resync", "soon"], "invalid duration 'soon'", id="resync"),
    pytest.param(["--cluster-name", "c", "--resync", "0"], "--resync must be positive", id="resync-zero"),
    pytest.param(
        ["--cluster-name", "c", "--probe-service-account", "just-a-name"], "NAMESPACE/NAME", id="probe-account"
    ),
    pytest.param(
        ["--cluster-name", "c", "--leader-elect-renew-deadline", "20s"], "renew deadline < lease", id="lease-timings"
    ),
    pytest.param(["--cluster-name", "c", "--health-port", "70000"], "is not a port", id="port"),
    pytest.param(["--cluster-name", "c", "--aws-calls-per-second", "0"], "must be positive", id="rate"),
    pytest.param(["--cluster-name", "c", "--keys-poll-interval=-1s"], "0 (off) or positive", id="keys-poll"),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_flags_are_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["controller", *argv])
    err = capsys.readouterr().err
    assert code == Exit.USAGE
    assert len(err.splitlines()) == 1, err
    assert err.startswith("irsa-webhook controller: ")
    assert message in err


def test_defaults() -> None:
    args = parse("--cluster-name", "c")
    config = controller.settings(args)
    assert config.resync == 3600
    assert config.lease == (15, 10, 2)
    assert args.leader_elect is True
    assert (args.health_port, args.metrics_port, args.aws_calls_per_second) == (8081, 9090, 10)
    assert args.leader_election_name == "irsa-webhook-provisioner"
    assert parse("--cluster-name", "c", "--no-leader-elect").leader_elect is False
    assert controller.settings(parse("--cluster-name", "c", "--resync", "1m30s")).resync == 90


def test_the_pods_own_namespace_and_service_account_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "irsa-system")
    monkeypatch.setenv("SERVICE_ACCOUNT_NAME", "irsa-provisioner")
    args = parse("--cluster-name", "c")
    assert args.leader_election_namespace == "irsa-system"
    assert controller.settings(args).probe == ("irsa-system", "irsa-provisioner")
    monkeypatch.delenv("POD_NAMESPACE")
    args = parse("--cluster-name", "c")
    assert args.leader_election_namespace == "irsa-webhook"
    assert controller.settings(args).probe is None


def test_without_boto3_it_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` raises ImportError
    monkeypatch.setitem(sys.modules, "webhook.provisioner.engine", None)
    with FakeApiServer(FakeCluster()) as server:
        code = main(["controller", "--cluster-name", "c", "--kubeconfig", str(server.kubeconfig(tmp_path))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == Exit.USAGE
    assert err[-1].startswith("irsa-webhook controller: the provisioner needs boto3: install irsa-webhook[provisioner]")


def test_a_run_leads_reconciles_serves_its_probes_and_releases_the_lease_on_stop(tmp_path: Path) -> None:
    with FakeApiServer(FakeCluster()) as server:
        issuer = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": ISSUER_KIND, "metadata": {"name": "main"}}
        server.cluster.store.put(COLLECTION, dict(issuer, spec={"deletionPolicy": "Retain"}))
        engine = ScriptedEngine()
        made: list[tuple[Any, ...]] = []

        def factory(cluster_name: str, api: Any, probe: tuple[str, str] | None, calls_per_second: float) -> Any:
            made.append((cluster_name, probe, calls_per_second))
            return engine

        health, metrics = free_port(), free_port()
        argv = [
            "--cluster-name=cluster-a",
            f"--kubeconfig={server.kubeconfig(tmp_path)}",
            "--leader-election-namespace=irsa-webhook",
            "--probe-service-account=irsa-webhook/provisioner",
            "--aws-calls-per-second=3",
            "--bind-address=127.0.0.1",
            f"--health-port={health}",
            f"--metrics-port={metrics}",
        ]
        stop = threading.Event()
        codes: list[int] = []
        roles = RoleEngines()
        runner = threading.Thread(target=lambda: codes.append(controller.run(parse(*argv), factory, stop, roles)))
        runner.start()
        try:
            wait_for(
                lambda: httpx.get(f"http://127.0.0.1:{health}/readyz").status_code == 200, timeout=10, what="ready"
            )
            assert httpx.get(f"http://127.0.0.1:{health}/healthz").status_code == 200
            assert httpx.get(f"http://127.0.0.1:{health}/metrics").status_code == 404  # on its own port
            wait_for(lambda: bool(engine.calls_of("reconcile", "main")), timeout=10, what="a reconcile")
            stored = server.cluster.store.get(COLLECTION, "main")
            assert stored is not None
            wait_for(lambda: (server.cluster.store.get(COLLECTION, "main") or {}).get("status"), timeout=5)
            lease = server.cluster.store.get(LEASES, "irsa-webhook-provisioner")
            assert lease is not None
            assert lease["spec"]["holderIdentity"]
            scraped = httpx.get(f"http://127.0.0.1:{metrics}/metrics").text
            assert "irsa_webhook_provisioner_leader 1.0" in scraped
        finally:
            stop.set()
            runner.join(20)
        assert codes == [Exit.OK]
        assert made == [("cluster-a", ("irsa-webhook", "provisioner"), 3.0)]
        lease = server.cluster.store.get(LEASES, "irsa-webhook-provisioner")
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == ""  # released for a successor


def test_a_taken_port_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with FakeApiServer(FakeCluster()) as server:
            argv = ["--cluster-name=c", f"--kubeconfig={server.kubeconfig(tmp_path)}", "--bind-address=127.0.0.1"]
            argv += [f"--health-port={free_port()}", f"--metrics-port={port}"]
            code = controller.run(parse(*argv), lambda *_: ScriptedEngine(), threading.Event(), RoleEngines())
    finally:
        taken.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == Exit.NO
    assert err[-1].startswith(f"irsa-webhook controller: cannot listen on 127.0.0.1:{port}: ")


def test_a_key_change_on_the_api_server_reconciles_every_issuer_before_the_resync(tmp_path: Path) -> None:
    cluster = FakeCluster()
    cluster.jwks = {"keys": [{"kid": "key-a"}]}
    with FakeApiServer(cluster) as server:
        issuer = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": ISSUER_KIND, "metadata": {"name": "main"}}
        server.cluster.store.put(COLLECTION, dict(issuer, spec={"deletionPolicy": "Retain"}))
        engine = ScriptedEngine()
        argv = [
            "--cluster-name=cluster-a",
            f"--kubeconfig={server.kubeconfig(tmp_path)}",
            "--no-leader-elect",
            "--resync=1h",
            "--keys-poll-interval=200ms",
            "--health-port=0",
            "--metrics-port=0",
        ]
        stop = threading.Event()
        runner = threading.Thread(target=lambda: controller.run(parse(*argv), lambda *_: engine, stop, RoleEngines()))
        runner.start()
        try:
            wait_for(lambda: len(engine.calls_of("reconcile", "main")) == 1, timeout=10, what="the first reconcile")
            threading.Event().wait(1.0)  # several polls with the same keys: no reconcile
            assert len(engine.calls_of("reconcile", "main")) == 1
            cluster.jwks = {"keys": [{"kid": "key-a"}, {"kid": "key-b"}]}  # a key added on the control plane
            wait_for(
                lambda: len(engine.calls_of("reconcile", "main")) == 2, timeout=10, what="a reconcile on the new key"
            )
        finally:
            stop.set()
            runner.join(20)


def test_keys_poll_interval_flag() -> None:
    assert controller.settings(parse("--cluster-name", "c")).keys_poll == 60
    assert controller.settings(parse("--cluster-name", "c", "--keys-poll-interval", "0")).keys_poll == 0


# -- the three kinds -----------------------------------------------------------------------------------
def role(kind: str, name: str, namespace: str | None = None, issuer: str = "main") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    spec = {"issuerRef": issuer, "serviceAccounts": [{"name": name}]}
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": kind, "metadata": meta, "spec": spec}


def issuer_object(name: str = "main") -> dict[str, Any]:
    meta = {"name": name}
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": ISSUER_KIND, "metadata": meta, "spec": {}}


def is_ready(issuer: dict[str, Any] | None) -> bool:
    conditions = ((issuer or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class Run:
    """``controller.run`` on a thread, with stand-in engines for the three kinds."""

    def __init__(self, server: FakeApiServer, folder: Path, *argv: str) -> None:
        self.issuers = ScriptedEngine()
        self.roles = RoleEngines()
        self.made: list[Any] = []
        self.health = free_port()
        args = [
            "--cluster-name=cluster-a",
            f"--kubeconfig={server.kubeconfig(folder)}",
            "--bind-address=127.0.0.1",
            f"--health-port={self.health}",
            "--resync=1h",
            *argv,
        ]
        self.stop = threading.Event()
        self.codes: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.codes.append(controller.run(parse(*args), self.factory, self.stop, self.roles))
        )

    def factory(self, *given: Any) -> ScriptedEngine:
        self.made.append(given)
        return self.issuers

    def __enter__(self) -> Run:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(20)
        assert self.codes == [Exit.OK]

    def ready(self) -> bool:
        return httpx.get(f"http://127.0.0.1:{self.health}/readyz").status_code == 200

    def metric(self, name: str, **labels: str) -> float | None:
        from prometheus_client import REGISTRY

        return REGISTRY.get_sample_value(name, labels)


def test_one_run_reconciles_the_three_kinds_under_one_lease_and_a_role_follows_its_issuer(tmp_path: Path) -> None:
    with FakeApiServer(FakeCluster()) as server:
        store = server.cluster.store
        store.put(COLLECTION, issuer_object())
        store.put(ROLES_IN % "team-a", role(ROLE_KIND, "reader", "team-a"))
        store.put(CLUSTER_ROLES, role(CLUSTER_ROLE_KIND, "shared"))
        keys = ("team-a/reader", "shared")
        seen: dict[str, list[bool]] = {key: [] for key in keys}
        roles_tried = threading.Event()

        run = Run(
            server,
            tmp_path,
            "--leader-election-namespace=irsa-webhook",
            "--annotation-prefix=irsa.example.com",
            "--role-path=/tenants/",
            "--forbid-inline-policies",
        )

        def role_answer(key: str) -> Any:
            def answer(obj: dict[str, Any]) -> Any:
                # The issuer as the role engine would read it: through the lookup it was given.
                ready = is_ready(run.roles.wirings[obj["kind"]].issuers("main"))
                seen[key].append(ready)
                if all(seen.values()):
                    roles_tried.set()
                if ready:
                    return outcome(obj)
                # Terminal: only a change (here: of its issuer) brings it back before the hourly resync.
                return outcome(obj, ready=False, retry="terminal", reason="IssuerNotReady")

            return answer

        run.roles.engines[ROLE_KIND].script["team-a/reader"] = role_answer("team-a/reader")
        run.roles.engines[CLUSTER_ROLE_KIND].script["shared"] = role_answer("shared")
        # The issuer becomes Ready only after both roles found it not Ready.
        run.issuers.during = lambda obj: roles_tried.wait(10)
        with run:
            wait_for(run.ready, timeout=10, what="ready")
            wait_for(lambda: all(s == [False, True] for s in seen.values()), timeout=10, what="the roles to follow")
            threading.Event().wait(0.5)
            assert all(s == [False, True] for s in seen.values()), seen  # woken once, not polled
            leases = [r for r in server.cluster.requests if r.method == "POST" and r.path == LEASES]
            assert len(leases) == 1  # one Lease for every kind
            wiring = run.roles.wirings[ROLE_KIND]
            assert wiring.issuer_engine is run.issuers  # one AWS side (one rate limit) for every kind
            assert (wiring.cluster_name, wiring.annotation_key) == ("cluster-a", "irsa.example.com/role-arn")
            assert wiring.guardrails == Guardrails(forbid_inline_policies=True, role_path="/tenants/")
            assert sorted(run.roles.wirings) == [CLUSTER_ROLE_KIND, ROLE_KIND]
            stored = store.get(ROLES_IN % "team-a", "reader")
            assert stored is not None
            assert stored["metadata"]["finalizers"] == ["irsa-webhook.io/provisioner"]  # roles: Delete by default
            assert run.metric("irsa_webhook_provisioner_kind_served", kind=ROLE_KIND) == 1
        assert len(run.made) == 1


def test_a_crd_not_installed_neither_crashes_nor_holds_readiness_back(tmp_path: Path) -> None:
    with FakeApiServer(FakeCluster()) as server:
        server.cluster.fail[CLUSTER_ROLES] = 404  # ClusterIRSARole's CRD is not installed
        server.cluster.store.put(ROLES_IN % "team-a", role(ROLE_KIND, "reader", "team-a"))
        with Run(server, tmp_path, "--no-leader-elect") as run:
            wait_for(run.ready, timeout=10, what="ready without the missing CRD")
            wait_for(lambda: bool(run.roles.engines[ROLE_KIND].calls_of("reconcile", "team-a/reader")), timeout=5)
            assert run.metric("irsa_webhook_provisioner_kind_served", kind=CLUSTER_ROLE_KIND) == 0
            server.cluster.store.put(CLUSTER_ROLES, role(CLUSTER_ROLE_KIND, "shared"))
            del server.cluster.fail[CLUSTER_ROLES]  # installed later: picked up without a restart
            engine = run.roles.engines[CLUSTER_ROLE_KIND]
            wait_for(lambda: bool(engine.calls_of("reconcile", "shared")), timeout=10, what="the late kind")
            assert run.metric("irsa_webhook_provisioner_kind_served", kind=CLUSTER_ROLE_KIND) == 1


def test_kinds_runs_only_the_kinds_asked_for(tmp_path: Path) -> None:
    with FakeApiServer(FakeCluster()) as server:
        server.cluster.store.put(COLLECTION, issuer_object())
        server.cluster.store.put(ROLES_IN % "team-a", role(ROLE_KIND, "reader", "team-a"))
        server.cluster.fail[CLUSTER_ROLES] = 500  # not run: must not hold readiness back either
        with Run(server, tmp_path, "--no-leader-elect", "--kinds=IRSAIssuer") as run:
            wait_for(run.ready, timeout=10, what="ready")
            wait_for(lambda: bool(run.issuers.calls_of("reconcile", "main")), timeout=5, what="the issuer")
            threading.Event().wait(0.3)
            assert run.roles.wirings == {}
            assert not any(r.path.endswith(ROLE_PLURAL) for r in server.cluster.requests)


def test_roles_run_alone_read_the_issuers_without_reconciling_them(tmp_path: Path) -> None:
    with FakeApiServer(FakeCluster()) as server:
        ready = {"conditions": [{"type": "Ready", "status": "True"}], "providerARN": "arn:p"}
        server.cluster.store.put(COLLECTION, dict(issuer_object(), status=ready))
        server.cluster.store.put(ROLES_IN % "team-a", role(ROLE_KIND, "reader", "team-a"))
        found: list[bool] = []
        with Run(server, tmp_path, "--no-leader-elect", "--kinds=IRSARole") as run:

            def answer(obj: dict[str, Any]) -> Any:
                found.append(is_ready(run.roles.wirings[ROLE_KIND].issuers("main")))
                return outcome(obj)

            run.roles.engines[ROLE_KIND].script["team-a/reader"] = answer
            wait_for(lambda: bool(found), timeout=10, what="the role's reconcile")
            assert found[0] is True
            assert run.issuers.calls == []  # the issuer engine holds the AWS side, and reconciles nothing
            assert sorted(run.roles.wirings) == [ROLE_KIND]


def test_the_role_engine_is_built_on_the_issuer_engines_aws_side() -> None:
    roleengine = pytest.importorskip("webhook.provisioner.roleengine", reason="needs the role engine's modules")
    aws = object()
    wiring = controller.RoleWiring(
        ROLE_KIND,
        "cluster-a",
        api="the api client",
        issuer_engine=type("IssuerEngine", (), {"aws": aws})(),
        issuers=lambda name: None,
        annotation_key="irsa.example.com/role-arn",
        guardrails=Guardrails(role_path="/tenants/"),
    )
    built = controller._role_engine(wiring)
    assert isinstance(built, roleengine.RoleEngine)
    assert built.aws is aws
    assert (built.cluster_name, built.kube, built.annotation_key) == (
        "cluster-a",
        "the api client",
        wiring.annotation_key,
    )
    assert built.issuers is wiring.issuers
    assert built.guardrails == wiring.guardrails
