"""The ServiceAccount cache under faults, against a real kube-apiserver + etcd and real webhook processes.

- a ServiceAccount that cannot be parsed (a 5,000-digit token-expiration) stops neither the watch of a
  running replica nor the first list of a new one, and its own pods are still answered;
- kube-apiserver restarted under a serving webhook: the watch is back within seconds of the API server;
- the webhook cut off from the API server while ServiceAccounts change and etcd compacts its history:
  the watch's resourceVersion is gone (410), the webhook relists, and nothing that changed is lost.

The live GET on a miss is turned off wherever it could hide a stuck watch (--service-account-live-lookup
=false): what the webhook answers then comes from its list+watch cache alone.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import pytest

from tests.support import kuberest as k
from tests.support.cases import review_of
from tests.support.certs import Certs
from tests.support.controlplane import ControlPlane
from tests.support.kuberest import CONFIG_PROPAGATION_TIMEOUT
from tests.support.procs import http_status
from tests.support.server import Server
from tests.support.waits import wait_for

from .proxy import TcpProxy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

NO_LIVE_LOOKUP = "--service-account-live-lookup=false"
FIVE_THOUSAND_DIGITS = "9" * 5000
# "Within seconds": a watch event reaches the webhook in milliseconds; this bounds a loaded CI machine.
WATCH_TIMEOUT = 10.0
# After kube-apiserver is back, the webhook's watch is too within this (its backoff is capped at 3 s).
RECOVERY_TIMEOUT = 5.0
# How long kube-apiserver stays down in the restart test: past the webhook's longest backoff.
DOWNTIME = 8.0
# kube-apiserver's compactor runs every interval and compacts to the revision of the previous run.
COMPACTION_INTERVAL = "2s"


def role(name: str) -> str:
    return f"arn:aws:iam::123456789012:role/reliability-{name}"


# -- talking to a webhook process -------------------------------------------------------------------
class Webhook:
    """One `irsa-webhook serve` process and a verified HTTPS client for its /mutate and /readyz."""

    def __init__(self, process: Server) -> None:
        self.process = process
        self.client = httpx.Client(
            base_url=f"https://127.0.0.1:{process.port}",
            verify=process.certs.context(),
            timeout=15,
        )

    def review(self, namespace: str, service_account: str) -> tuple[int, dict[str, Any], k.JSON]:
        """POST an AdmissionReview of a pod using ``service_account``: (HTTP status, response, pod)."""
        review = review_of(namespace, service_account, secrets.token_hex(8))
        answer = self.client.post("/mutate", json=review)
        response = answer.json().get("response", {}) if answer.status_code == 200 else {}
        return answer.status_code, response, review["request"]["object"]

    def role_for(self, namespace: str, service_account: str) -> str | None:
        """The AWS_ROLE_ARN the webhook injects for this account's pods (None: not mutated)."""
        status, response, pod = self.review(namespace, service_account)
        assert status == 200, f"/mutate answered {status}"
        if not response.get("patch"):
            return None
        patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))
        return role_of(patched)

    def readyz(self) -> int:
        return http_status(
            f"https://127.0.0.1:{self.process.port}/readyz",
            context=self.process.certs.context(),
        )

    def metric(self, name: str, **labels: str) -> float:
        return self.process.metric(name, **labels) or 0.0

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def webhooks(reliability_certs: Certs, tmp_path: Path) -> Iterator[Callable[..., Webhook]]:
    """``start(plane, *extra_args) -> Webhook``: a webhook of this test's own, ready, stopped after it."""
    processes: list[Server] = []
    started: list[Webhook] = []

    def start(plane: ControlPlane, *extra_args: str) -> Webhook:
        process = Server(
            tmp_path / f"webhook-{len(processes)}",
            reliability_certs,
            *extra_args,
            kubeconfig=plane.kubeconfig,
            bind_address=None,
        )
        processes.append(process)
        webhook = Webhook(process.start())  # its ports are known once started
        started.append(webhook)
        return webhook

    yield start
    for webhook in started:
        webhook.close()
    for process in processes:
        process.stop()


def kube_client(plane: ControlPlane) -> k.KubeRest:
    return k.KubeRest(plane.server, plane.token, plane.ca_file)


def register(kube: k.KubeRest, name: str, webhook: Webhook, labels: Mapping[str, str]) -> None:
    """A MutatingWebhookConfiguration (failurePolicy Fail) for namespaces carrying ``labels``; returns
    once kube-apiserver calls it."""
    process = webhook.process
    k.register_webhook(kube, name, process.mutate_url, process.certs.ca_pem, "Fail", labels)


def stored_role(kube: k.KubeRest, namespace: str, pod_name: str) -> str | None:
    return k.env_of(kube.get_pod(namespace, pod_name)["spec"]["containers"][0]).get("AWS_ROLE_ARN")


def namespace_for(kube: k.KubeRest, prefix: str) -> tuple[str, dict[str, str]]:
    labels = {"irsa-reliability.test/webhook": prefix}
    name = f"{prefix}-{secrets.token_hex(3)}"
    kube.create_namespace(name, labels)
    return name, labels


# -- a. one unparseable ServiceAccount --------------------------------------------------------------
def test_a_poisoned_service_account_stops_neither_watch_nor_list(
    control_planes: Callable[..., ControlPlane], webhooks: Callable[..., Webhook]
) -> None:
    plane = control_planes()
    kube = kube_client(plane)
    try:
        running = webhooks(plane, NO_LIVE_LOOKUP)  # a replica already watching when the poison arrives
        ns, labels = namespace_for(kube, "poison")
        register(kube, "irsa-reliability-poison", running, labels)

        kube.create_service_account(
            ns, "poisoned", {k.ROLE_ANNOTATION: role("poisoned"), k.EXPIRATION_ANNOTATION: FIVE_THOUSAND_DIGITS}
        )
        kube.create_service_account(ns, "fresh", {k.ROLE_ANNOTATION: role("fresh")})

        # The change after the poison reaches the running replica's cache, and pods get the role.
        wait_for(
            lambda: running.role_for(ns, "fresh") == role("fresh"),
            timeout=WATCH_TIMEOUT,
            what="the running webhook's watch to deliver the account created after the poisoned one",
        )
        kube.create_pod(ns, k.pod("fresh-pod", "fresh"))
        assert stored_role(kube, ns, "fresh-pod") == role("fresh")
        assert running.readyz() == 200

        # A pod of the poisoned account is answered (failurePolicy Fail: a 500 would reject it).
        kube.create_pod(ns, k.pod("poisoned-pod", "poisoned"))
        status, response, _pod = running.review(ns, "poisoned")
        assert status == 200
        assert response["allowed"]

        # A replica started now lists the poisoned account first thing: it becomes ready (the list
        # completed) and serves the new account from that list.
        second = webhooks(plane, NO_LIVE_LOOKUP)
        assert second.readyz() == 200
        assert second.role_for(ns, "fresh") == role("fresh")
        status, response, _pod = second.review(ns, "poisoned")
        assert status == 200
        assert response["allowed"]
        assert running.readyz() == 200
    finally:
        kube.close()


# -- b. kube-apiserver restarted --------------------------------------------------------------------
def test_the_watch_is_back_within_seconds_of_a_restarted_api_server(
    control_planes: Callable[..., ControlPlane], webhooks: Callable[..., Webhook]
) -> None:
    # With the default (0), kube-apiserver never ends a watch that started from a resourceVersion
    # on SIGTERM and waits until it is killed; with a grace period it ends them and exits at once.
    plane = control_planes("--shutdown-watch-termination-grace-period=2s")
    kube = kube_client(plane)
    try:
        webhook = webhooks(plane, NO_LIVE_LOOKUP)
        ns, labels = namespace_for(kube, "restart")
        register(kube, "irsa-reliability-restart", webhook, labels)
        kube.create_service_account(ns, "before", {k.ROLE_ANNOTATION: role("before")})
        wait_for(lambda: webhook.role_for(ns, "before") == role("before"), timeout=WATCH_TIMEOUT, what="before")

        # Down long enough for the webhook's retries to back off as far as they go, then back on the
        # same port, certificates and etcd; start_apiserver returns once /readyz passes.
        plane.stop_apiserver()
        time.sleep(DOWNTIME)
        plane.start_apiserver()
        back = time.monotonic()
        kube.close()
        kube = kube_client(plane)
        kube.create_service_account(ns, "after", {k.ROLE_ANNOTATION: role("after")})
        wait_for(
            lambda: webhook.role_for(ns, "after") == role("after"),
            timeout=RECOVERY_TIMEOUT,
            interval=0.1,
            what="the webhook's watch to deliver an account created after the restart",
            on_timeout=webhook.process.logs,
        )
        recovered = time.monotonic() - back
        assert recovered < RECOVERY_TIMEOUT

        # And through the API server: a pod of the new account gets its role.
        def admitted_with_role() -> bool:
            return role_of(kube.create_pod(ns, k.pod("after-probe", "after"), dry_run=True)) == role("after")

        wait_for(admitted_with_role, timeout=CONFIG_PROPAGATION_TIMEOUT, what="kube-apiserver to call the webhook")
        kube.create_pod(ns, k.pod("after-pod", "after"))
        assert stored_role(kube, ns, "after-pod") == role("after")
        assert webhook.role_for(ns, "before") == role("before")  # nothing lost either
        assert webhook.readyz() == 200
    finally:
        kube.close()


def role_of(pod: k.JSON) -> str | None:
    return k.env_of(pod["spec"]["containers"][0]).get("AWS_ROLE_ARN")


# -- c. resourceVersion compacted away while the webhook was cut off ---------------------------------
def compacted_past(plane: ControlPlane, resource_version: str) -> bool:
    """True once a ServiceAccount watch from ``resource_version`` is refused as too old (410)."""
    with httpx.Client(
        base_url=plane.server,
        verify=ssl.create_default_context(cafile=str(plane.ca_file)),
        headers={"Authorization": f"Bearer {plane.token}"},
        timeout=10,
    ) as client:
        params = {"watch": "true", "resourceVersion": resource_version, "timeoutSeconds": "1"}
        with client.stream("GET", "/api/v1/serviceaccounts", params=params) as response:
            if response.status_code == 410:
                return True
            for line in response.iter_lines():
                if line.strip():
                    event = json.loads(line)
                    return bool(event.get("type") == "ERROR" and event.get("object", {}).get("code") == 410)
    return False


def test_a_compacted_resource_version_is_relisted_and_nothing_is_lost(
    control_planes: Callable[..., ControlPlane],
    webhooks: Callable[..., Webhook],
    tcp_proxy: Callable[[int], TcpProxy],
) -> None:
    # ServiceAccounts without a watch cache: a watch from an old resourceVersion is then served by
    # etcd itself, and what expires it is compaction (kube-apiserver's compactor, every 2 s here).
    plane = control_planes(f"--etcd-compaction-interval={COMPACTION_INTERVAL}", "--watch-cache-sizes=serviceaccounts#0")
    kube = kube_client(plane)
    port = int(plane.server.rsplit(":", 1)[1])
    proxy = tcp_proxy(port)  # the webhook's only path to the API server
    try:
        webhook = webhooks(plane, NO_LIVE_LOOKUP, "--kube-api", f"https://127.0.0.1:{proxy.port}")
        ns, labels = namespace_for(kube, "compaction")
        register(kube, "irsa-reliability-compaction", webhook, labels)
        for name in ("kept", "changed", "removed"):
            kube.create_service_account(ns, name, {k.ROLE_ANNOTATION: role(name)})
        wait_for(lambda: webhook.role_for(ns, "removed") == role("removed"), timeout=WATCH_TIMEOUT, what="sync")
        gone_before = webhook.metric("irsa_webhook_service_account_watch_restarts_total", reason="gone")

        # Cut off: nothing the webhook knows is newer than the cluster's revision now.
        cut_at = kube.get("/api/v1/serviceaccounts?limit=1")["metadata"]["resourceVersion"]
        proxy.block()
        kube.create_service_account(ns, "added", {k.ROLE_ANNOTATION: role("added")})
        kube.merge_patch(
            f"/api/v1/namespaces/{ns}/serviceaccounts/changed",
            {"metadata": {"annotations": {k.ROLE_ANNOTATION: role("changed-again")}}},
        )
        kube.delete(f"/api/v1/namespaces/{ns}/serviceaccounts/removed")
        kube.create_service_account(ns, "churn", {k.ROLE_ANNOTATION: role("churn-0")})
        churn = iter(range(1, 1000))

        def compacted() -> bool:
            kube.merge_patch(
                f"/api/v1/namespaces/{ns}/serviceaccounts/churn",
                {"metadata": {"annotations": {k.ROLE_ANNOTATION: role(f"churn-{next(churn)}")}}},
            )
            return compacted_past(plane, cut_at)

        wait_for(compacted, timeout=30, interval=0.5, what=f"etcd to compact past revision {cut_at}")

        proxy.unblock()
        wait_for(
            lambda: webhook.metric("irsa_webhook_service_account_watch_restarts_total", reason="gone") > gone_before,
            timeout=WATCH_TIMEOUT,
            what="the webhook to get 410 Gone and relist",
            on_timeout=webhook.process.logs,
        )
        assert "relisting" in webhook.process.logs()

        # Everything that happened while it was cut off is in its cache (no live GET to help).
        expected = {
            "kept": role("kept"),
            "changed": role("changed-again"),
            "removed": None,
            "added": role("added"),
        }
        wait_for(
            lambda: {name: webhook.role_for(ns, name) for name in expected} == expected,
            timeout=WATCH_TIMEOUT,
            what="the relisted cache to match the cluster",
        )
        status, response, _pod = webhook.review(ns, "removed")
        assert status == 200
        assert any("not found" in w for w in response.get("warnings", []))
        kube.create_pod(ns, k.pod("added-pod", "added"))
        assert stored_role(kube, ns, "added-pod") == role("added")
        assert webhook.readyz() == 200
    finally:
        kube.close()
