"""Self-managed certificates (``--self-managed-tls-secret``) against a real kube-apiserver: real
``irsa-webhook serve`` processes make their CA and pair, publish the caBundle, rotate under load,
share the work between two replicas, survive bad state, and run from the chart's own render.

Lifetimes are shortened by flags (a pair lives 12 s and is rotated 6 s before it expires), so a test
sees a rotation every few seconds. The webhook configuration has one webhook per replica, each
calling that replica's URL with failurePolicy Fail: every dry-run pod created during the load goes
through both replicas, and any TLS failure on either (a pair served before the caBundle trusted it,
a CA dropped too early) fails the pod creation and is counted.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from tests.deploy import helm as chart
from tests.deploy.objects import one
from tests.deploy.render import documents
from tests.support import kuberest as k
from tests.support.certs import FAST_RELOAD, handshake
from tests.support.controlplane import ControlPlane
from tests.support.kuberest import CONFIG_PROPAGATION_TIMEOUT
from tests.support.metrics import scraped
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess, http_status
from tests.support.server import CLI, READY_TIMEOUT
from tests.support.waits import wait_for

pytestmark = pytest.mark.e2e

LABEL = "irsa-e2e-self-managed"
ROLE = "arn:aws:iam::123456789012:role/self-managed"
FAST = [
    "--self-managed-tls-lifetime=12s",
    "--self-managed-tls-renew-before=6s",
    "--self-managed-tls-check-interval=0.5s",
]
STEPS = ("issue", "pending", "ca-bundle", "promote", "prune")
RENEW_AFTER = 12 - 6  # seconds from issue to renewal: lifetime minus renew-before, as above


def unverified() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class Replica:
    """One ``irsa-webhook serve`` in self-managed mode on free loopback ports."""

    workdir: Path
    kubeconfig: Path
    namespace: str
    secret: str
    webhook: str
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    metrics_port: int = 0
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> Replica:
        self.port, self.metrics_port = free_port(), free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            *CLI,
            "serve",
            f"--port={self.port}",
            f"--metrics-port={self.metrics_port}",
            "--bind-address=127.0.0.1",
            f"--tls-cert={self.workdir / 'tls.crt'}",
            f"--tls-key={self.workdir / 'tls.key'}",
            f"--kubeconfig={self.kubeconfig}",
            f"--namespace={self.namespace}",
            f"--self-managed-tls-secret={self.secret}",
            f"--self-managed-tls-webhook-configuration={self.webhook}",
            "--self-managed-tls-hosts=127.0.0.1,localhost",
            *FAST,
            *self.extra,
        ]
        env = {**os.environ, **FAST_RELOAD, **self.env}
        self.process = ManagedProcess("irsa-webhook", argv, self.workdir / f"serve-{self.port}.log", env)
        process = self.process

        def ready() -> bool:
            process.check_alive()
            return http_status(f"{self.url}/readyz", context=unverified()) == 200

        wait_for(ready, timeout=READY_TIMEOUT, what="self-managed /readyz", on_timeout=process.tail)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def served(self, bundle_pem: bytes | None = None) -> x509.Certificate:
        """The certificate a new connection gets, verified against ``bundle_pem`` when given."""
        context = unverified() if bundle_pem is None else ssl.create_default_context(cadata=bundle_pem.decode())
        with handshake(self.port, context, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return scraped(text, name, **labels) or 0.0

    def writes(self, step: str, result: str = "written") -> float:
        return self.metric("irsa_webhook_self_managed_tls_writes_total", step=step, result=result)

    def sync_errors(self) -> float:
        return self.metric("irsa_webhook_self_managed_tls_sync_errors_total")

    def logs(self) -> str:
        return self.process.log.read_text(errors="replace") if self.process else ""


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()


def configuration(name: str, urls: list[str], label_value: str) -> k.JSON:
    """One webhook per URL, failing closed, for namespaces labelled LABEL=label_value; no caBundle."""
    hooks = []
    for index, url in enumerate(urls):
        hook = k.webhook_configuration(name, url, b"", "Fail", {"matchLabels": {LABEL: label_value}})["webhooks"][0]
        hook["name"] = f"r{index}.{name}.irsa-e2e.test"
        del hook["clientConfig"]["caBundle"]
        hooks.append(hook)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": hooks,
    }


@dataclass
class Setup:
    kube: k.KubeRest
    namespace: str
    secret: str
    webhook: str

    @property
    def webhook_path(self) -> str:
        return f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{self.webhook}"

    @property
    def secret_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/secrets/{self.secret}"

    def bundle(self) -> bytes:
        hooks = self.kube.get(self.webhook_path)["webhooks"]
        bundles = {h["clientConfig"].get("caBundle", "") for h in hooks}
        assert len(bundles) == 1, "the webhooks' caBundles differ"
        return base64.b64decode(bundles.pop())

    def secret_data(self) -> dict[str, bytes]:
        data = self.kube.get(self.secret_path)["data"]
        return {key: base64.b64decode(value) for key, value in data.items()}

    def admitted(self) -> bool:
        """A dry-run pod of the annotated ServiceAccount, through every webhook (Fail): injected."""
        return k.is_injected(self.kube.create_pod(self.namespace, k.pod("probe", "app"), dry_run=True))


@pytest.fixture
def setup(kube: k.KubeRest, make_namespace: Callable[..., str]) -> Iterator[Setup]:
    suffix = secrets.token_hex(3)
    namespace = make_namespace(labels={LABEL: suffix}, prefix="self-managed")
    kube.create_service_account(namespace, "app", {k.ROLE_ANNOTATION: ROLE})
    found = Setup(kube, namespace, "webhook-certs", f"irsa-e2e-self-managed-{suffix}")
    yield found
    kube.delete_webhook_configuration(found.webhook)


def serial_of(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def test_install_rotation_and_two_replicas_under_load(
    control_plane: ControlPlane, setup: Setup, replicas: list[Replica], tmp_path: Path
) -> None:
    """First replica: creates the Secret (one issue) before the webhook configuration exists, and is
    ready. Second replica: finds a valid Secret and writes nothing. Then, with the configuration
    registered (no caBundle), it gets the caBundle, and under continuous admissions through both
    replicas at least three rotations happen with no failed admission and no failed verified
    handshake; each rotation is written once between the two (pending and promote counted once);
    both serve the Secret's current pair at the end."""
    label = setup.kube.get(f"/api/v1/namespaces/{setup.namespace}")["metadata"]["labels"][LABEL]
    first = Replica(tmp_path / "a", control_plane.kubeconfig, setup.namespace, setup.secret, setup.webhook)
    issued_at = time.monotonic()  # at the latest: the pair's age is at most the time since
    replicas.append(first.start())
    assert first.writes("issue") == 1
    issued = setup.secret_data()
    assert serial_of(issued["tls.crt"]) == first.served().serial_number  # it serves the Secret's pair
    second = Replica(tmp_path / "b", control_plane.kubeconfig, setup.namespace, setup.secret, setup.webhook)
    replicas.append(second.start())
    # A valid Secret: the second replica follows it and never issues. Until the pair is due for
    # renewal (RENEW_AFTER after its issue) it writes nothing at all; a start slower than that (a
    # loaded 2-core machine) may see the renewal due and stage it, which is a pending write only.
    assert second.writes("issue") == 0
    if time.monotonic() - issued_at < RENEW_AFTER:
        assert sum(second.writes(step) for step in STEPS) == 0
    else:
        assert sum(second.writes(step) for step in STEPS if step != "pending") == 0
    assert serial_of(setup.secret_data()["tls.crt"]) == serial_of(issued["tls.crt"])  # nothing promoted yet

    setup.kube.apply_webhook_configuration(configuration(setup.webhook, [f"{r.url}/mutate" for r in replicas], label))
    wait_for(setup.admitted, timeout=CONFIG_PROPAGATION_TIMEOUT, what="admissions through both replicas")

    requests = failures = handshakes = bad_handshakes = 0
    errors: list[str] = []
    serials: dict[str, set[int]] = {"a": set(), "b": set()}
    start = time.monotonic()
    rotations = 0.0
    while time.monotonic() - start < 60 and rotations < 3:
        requests += 1
        try:
            if not setup.admitted():
                failures += 1
                errors.append("not injected")
        except Exception as exc:
            failures += 1
            errors.append(str(exc)[:300])
        if requests % 5 == 0:
            bundle = setup.bundle()
            for name, replica in zip(("a", "b"), replicas, strict=True):
                handshakes += 1
                try:
                    serials[name].add(replica.served(bundle).serial_number)
                except (ssl.SSLError, OSError) as exc:
                    bad_handshakes += 1
                    errors.append(f"{name}: {exc}")
            rotations = sum(r.writes("promote") for r in replicas)
    elapsed = time.monotonic() - start
    print(
        f"\nself-managed rotation: {rotations:g} rotations in {elapsed:.1f}s, {requests} admissions through "
        f"both replicas, {failures} failed; {handshakes} verified handshakes, {bad_handshakes} failed; "
        f"serials served a={len(serials['a'])} b={len(serials['b'])}; writes by a/b: "
        + ", ".join(f"{step} {replicas[0].writes(step):g}/{replicas[1].writes(step):g}" for step in STEPS)
        + f"; conflicts {sum(r.writes(step, 'conflict') for r in replicas for step in STEPS):g}"
    )
    assert rotations >= 3, first.process.tail() if first.process else ""
    assert (failures, bad_handshakes) == (0, 0), errors[:5]
    # Each step of each rotation was written by exactly one replica: the others' writes lost (409)
    # or were never attempted.
    # (One more pending: the rotation under way at the end; one more again if the first pending pair
    # went stale before the configuration was registered on a slow machine.)
    written = sum(r.writes("pending") for r in replicas)
    assert rotations <= written <= rotations + 2, (written, rotations)
    assert sum(r.writes("issue") for r in replicas) == 1
    wait_for(
        lambda: (
            {r.served(setup.bundle()).serial_number for r in replicas} == {serial_of(setup.secret_data()["tls.crt"])}
        ),
        timeout=10,
        what="both replicas serving the Secret's pair",
    )
    # Both replicas swapped in every new pair (sampling the served serials would miss quick swaps).
    for replica in replicas:
        assert replica.metric("irsa_webhook_certificate_reloads_total", result="success") >= rotations


def test_bad_state_is_retried_and_never_stops_serving(
    control_plane: ControlPlane, setup: Setup, replicas: list[Replica], tmp_path: Path
) -> None:
    """No webhook configuration: the replica still issues and serves (errors logged, retried with
    backoff, the process alive). Garbage in the Secret: the pair being served stays served, the
    Secret gets a new pair, which is served only once a caBundle trusts it."""
    label = setup.kube.get(f"/api/v1/namespaces/{setup.namespace}")["metadata"]["labels"][LABEL]
    replica = Replica(tmp_path / "a", control_plane.kubeconfig, setup.namespace, setup.secret, setup.webhook)
    replica.extra = ["--self-managed-tls-lifetime=1h", "--self-managed-tls-renew-before=10m"]
    replicas.append(replica.start())
    first = replica.served().serial_number
    wait_for(lambda: replica.sync_errors() >= 2, timeout=15, what="retries of the missing configuration")
    assert f"MutatingWebhookConfiguration {setup.webhook} not found" in replica.logs()

    garbage = setup.kube.get(setup.secret_path)
    garbage["data"]["tls.crt"] = base64.b64encode(b"garbage").decode()
    setup.kube.request("PUT", setup.secret_path, garbage)
    wait_for(
        lambda: serial_of(setup.secret_data()["tls.crt"]) != first,
        timeout=15,
        what="the garbage Secret replaced",
    )
    assert "tls.crt: not PEM" in replica.logs()
    time.sleep(2)  # several passes: the new pair is not trusted anywhere yet, so it is not served
    assert replica.served().serial_number == first
    assert replica.process is not None
    replica.process.check_alive()

    setup.kube.apply_webhook_configuration(configuration(setup.webhook, [f"{replica.url}/mutate"], label))
    replaced = serial_of(setup.secret_data()["tls.crt"])
    wait_for(
        lambda: replica.served(setup.bundle()).serial_number == replaced,
        timeout=15,
        what="the new pair served once the caBundle trusts it",
    )
    wait_for(setup.admitted, timeout=CONFIG_PROPAGATION_TIMEOUT, what="admissions with the new pair")


# --- the chart's render, applied twice -------------------------------------------------------------


def token_kubeconfig(control_plane: ControlPlane, kube: k.KubeRest, namespace: str, account: str, out: Path) -> Path:
    """A kubeconfig with a token of ACCOUNT: the webhook then runs with exactly the chart's RBAC."""
    token = kube.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
    )["status"]["token"]
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    config["users"] = [{"name": config["users"][0]["name"], "user": {"token": token}}]
    out.write_text(yaml.safe_dump(config))
    return out


def resource_versions(control_plane: ControlPlane, rendered: str) -> dict[str, str]:
    result = control_plane.kubectl("get", "-o", "json", "-f", "-", input=rendered)
    body = json.loads(result.stdout)
    items = body["items"] if body.get("kind") == "List" else [body]
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in items}


def test_helm_template_is_stable_and_a_second_apply_changes_nothing(
    control_plane: ControlPlane, kube: k.KubeRest, make_namespace: Callable[..., str], tmp_path: Path
) -> None:
    """ci/self-managed-certificate.yaml rendered twice: the same bytes. Applied server-side, then the
    webhook (the rendered args, with the release's ServiceAccount token: the chart's RBAC and no
    more) creates its Secret and writes the caBundle; applied again: no object changes and the
    caBundle stays."""
    helm = chart.find_helm()
    namespace = make_namespace(labels={"pod-security.kubernetes.io/enforce": "restricted"}, prefix="helm-sm")
    release = f"rel-{secrets.token_hex(3)}"
    args = (
        "-f",
        str(chart.CI_VALUES / "self-managed-certificate.yaml"),
        "--set",
        "mutatingWebhook.failurePolicy=Ignore",
    )
    first = chart.template(helm, None, *args, release=release, namespace=namespace)
    second = chart.template(helm, None, *args, release=release, namespace=namespace)
    assert first == second
    objs = documents(first)
    fullname = f"{release}-irsa-webhook"
    webhook_path = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{fullname}"
    try:
        control_plane.kubectl("apply", "--server-side", "-f", "-", input=first)
        before = resource_versions(control_plane, first)
        box = one(objs, "Deployment", fullname)["spec"]["template"]["spec"]["containers"][0]
        kubeconfig = token_kubeconfig(control_plane, kube, namespace, fullname, tmp_path / "webhook.kubeconfig")
        port, metrics = free_port(), free_port()
        workdir = tmp_path / "webhook"
        workdir.mkdir()
        argv = [
            *CLI,
            "serve",
            *box["args"],
            # Where this process can listen and write; everything else as rendered.
            f"--port={port}",
            f"--metrics-port={metrics}",
            "--bind-address=127.0.0.1",
            f"--tls-cert={workdir / 'tls.crt'}",
            f"--tls-key={workdir / 'tls.key'}",
            f"--kubeconfig={kubeconfig}",
        ]
        env = {**os.environ, "IRSA_WEBHOOK_NAMESPACE": namespace}  # the downward API's value
        assert [e["name"] for e in box["env"]] == ["IRSA_WEBHOOK_NAMESPACE"]
        process = ManagedProcess("irsa-webhook", argv, workdir / "serve.log", env)

        def ready() -> bool:
            process.check_alive()
            return http_status(f"https://127.0.0.1:{port}/readyz", context=unverified()) == 200

        try:
            wait_for(
                ready,
                timeout=READY_TIMEOUT,
                what="the rendered webhook ready",
                on_timeout=process.tail,
            )
            hook = wait_for(
                lambda: kube.get(webhook_path)["webhooks"][0]["clientConfig"].get("caBundle"),
                timeout=15,
                what="the caBundle written",
            )
        finally:
            process.stop()
        secret = kube.get(f"/api/v1/namespaces/{namespace}/secrets/{fullname}-certs")
        owner = secret["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("MutatingWebhookConfiguration", fullname)
        data = {key: base64.b64decode(value) for key, value in secret["data"].items()}
        host = f"{fullname}.{namespace}.svc"
        chart.verify_serving_pair(base64.b64decode(hook), data["tls.crt"], data["tls.key"], host)
        written = resource_versions(control_plane, first)
        assert {key: v for key, v in written.items() if v != before[key]} == {
            f"MutatingWebhookConfiguration/{fullname}": written[f"MutatingWebhookConfiguration/{fullname}"]
        }

        result = control_plane.kubectl("apply", "--server-side", "-f", "-", input=second)
        assert resource_versions(control_plane, second) == written, result.stdout
        assert kube.get(webhook_path)["webhooks"][0]["clientConfig"]["caBundle"] == hook
    finally:
        control_plane.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=first, check=False)
