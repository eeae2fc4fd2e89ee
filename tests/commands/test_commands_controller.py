"""``irsa-webhook controller``: its flags, checked with one-line messages, and a whole run against the
fake API server with a stand-in engine (the command's wiring: Lease, watch, probes, metrics, stop)."""

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

from tests.support.engines import ScriptedEngine
from tests.support.kubeapi import FakeApiServer, FakeCluster
from tests.support.ports import free_port
from tests.support.waits import wait_for
from webhook.cli import build_parser, main
from webhook.commands import controller
from webhook.commands.common import Exit
from webhook.provisioner.model import API_GROUP, API_VERSION, ISSUER_KIND, ISSUER_PLURAL

COLLECTION = f"/apis/{API_GROUP}/{API_VERSION}/{ISSUER_PLURAL}"
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
        runner = threading.Thread(target=lambda: codes.append(controller.run(parse(*argv), factory, stop)))
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
            code = controller.run(parse(*argv), lambda *_: ScriptedEngine(), threading.Event())
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
        runner = threading.Thread(target=lambda: controller.run(parse(*argv), lambda *_: engine, stop))
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
