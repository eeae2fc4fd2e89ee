"""The Helm chart against a real kube-apiserver: `helm install` of every documented values example
(manifests/helm/irsa-webhook/ci/*.yaml, the community chart's example among them, unchanged), then
`helm upgrade` and `helm uninstall`, with the project's pinned helm.

For each install: the API server accepts the render under strict field validation; every object of
the release is stored; the webhook configuration calls the release's Service, whose port reaches the
container's; the caBundle verifies the certificate the webhook serves (chain, validity, and the
Service's DNS name in its SAN), or, with cert-manager, names the Certificate that is valid for that
name and lands in the mounted Secret; RBAC, as the API server decides it for the release's
ServiceAccounts, allows what the webhook and the audit do and nothing near it; a pod from the
Deployment's template is admitted under the restricted Pod Security level. `helm uninstall` leaves
nothing behind: no object of the release, no release record, no webhook configuration that could
keep calling a Service that is gone.

There is no scheduler, kubelet or controller-manager here: the Deployment never runs pods, and
cert-manager and the Prometheus Operator are not installed. Their kinds (Issuer, Certificate,
ServiceMonitor) get stand-in CRDs with an open schema for the time of this module, so that the
objects can be stored and inspected; their real schemas are not checked (see test_e2e_manifests.py).
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import helm as chart
from tests.deploy.objects import one
from tests.deploy.render import documents
from tests.support import kuberest as k
from tests.support.controlplane import ControlPlane
from tests.support.kuberest import CONFIG_PROPAGATION_TIMEOUT
from tests.support.paths import REPO
from tests.support.waits import wait_for

pytestmark = pytest.mark.e2e

CI_VALUES = chart.ci_values()
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
SECRET_OF_EXISTING = "irsa-webhook-byo-tls"  # ci/existing-secret.yaml's pki.existingSecret
# ci/provisioner.yaml's CRDs, which `helm uninstall` keeps (helm.sh/resource-policy: keep).
PROVISIONER_CRDS = [
    f"customresourcedefinition.apiextensions.k8s.io/{plural}.irsa-webhook.io"
    for plural in ("irsaissuers", "irsaroles", "clusterirsaroles")
]
# The stand-in CRDs: (group, kind, plural) of what the chart renders beyond Kubernetes' own kinds.
STAND_INS = [
    ("cert-manager.io", "Issuer", "issuers"),
    ("cert-manager.io", "Certificate", "certificates"),
    ("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
]


@pytest.fixture(scope="module")
def helm() -> Path:
    """The pinned helm (`make helm`) or HELM; missing FAILS, as the control plane's binaries do."""
    try:
        return chart.find_helm()
    except chart.MissingHelm as exc:
        pytest.fail(str(exc), pytrace=False)


def stand_in_crd(group: str, kind: str, plural: str) -> k.JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def stand_in_crds(control_plane: ControlPlane) -> Iterator[None]:
    crds = [stand_in_crd(*crd) for crd in STAND_INS]
    text = yaml.safe_dump_all(crds)
    control_plane.kubectl("apply", "-f", "-", input=text)
    names = [f"crd/{crd['metadata']['name']}" for crd in crds]
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", *names)
    try:
        yield
    finally:
        control_plane.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=text)


@dataclass
class Release:
    """One release of the chart in a namespace of its own, driven with the project's helm."""

    helm: Path
    control_plane: ControlPlane
    kube: k.KubeRest
    name: str
    namespace: str
    # More namespaces made for it (the provisioner's), deleted with it.
    namespaces: list[str] = field(default_factory=list)

    @property
    def fullname(self) -> str:
        return f"{self.name}-irsa-webhook"

    @property
    def host(self) -> str:
        return f"{self.fullname}.{self.namespace}.svc"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {"KUBECONFIG": str(self.control_plane.kubeconfig)}
        return chart.run(self.helm, *args, "--namespace", self.namespace, env=env, check=check)

    def install(self, *values: str) -> str:
        return self.run("install", self.name, str(chart.CHART), *values).stdout

    def upgrade(self, *values: str) -> str:
        return self.run("upgrade", self.name, str(chart.CHART), *values).stdout

    def template(self, *values: str) -> str:
        return self.run("template", self.name, str(chart.CHART), *values).stdout

    def manifest(self) -> str:
        return self.run("get", "manifest", self.name).stdout

    def uninstall(self) -> None:
        self.run("uninstall", self.name)

    def stored(self, manifest: str) -> list[k.JSON]:
        """The release's objects as the API server stores them; fails if any is missing."""
        result = self.control_plane.kubectl("get", "-o", "json", "-f", "-", input=manifest)
        body = json.loads(result.stdout)
        items: list[k.JSON] = body["items"] if body.get("kind") == "List" else [body]
        return items

    def left_over(self, manifest: str) -> list[str]:
        result = self.control_plane.kubectl("get", "--ignore-not-found", "-o", "name", "-f", "-", input=manifest)
        return result.stdout.split()

    def secret(self, name: str) -> dict[str, bytes]:
        data = self.kube.get(f"/api/v1/namespaces/{self.namespace}/secrets/{name}")["data"]
        return {key: base64.b64decode(value) for key, value in data.items()}

    def webhook_configuration(self) -> k.JSON:
        path = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{self.fullname}"
        return self.kube.get(path)

    def can(
        self,
        account: str,
        verb: str,
        resource: str,
        *,
        namespace: str = "",
        name: str = "",
        group: str = "",
        account_namespace: str = "",
    ) -> bool:
        """kube-apiserver's own RBAC decision for the release's ServiceAccount ACCOUNT (in the release
        namespace, or ACCOUNT_NAMESPACE)."""
        resource, _, subresource = resource.partition("/")
        home = account_namespace or self.namespace
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{home}:{account}",
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{home}",
                    "system:authenticated",
                ],
                "resourceAttributes": {
                    "group": group,
                    "resource": resource,
                    "subresource": subresource,
                    "verb": verb,
                    "namespace": namespace,
                    "name": name,
                },
            },
        }
        answer = self.kube.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
        return bool(answer["status"].get("allowed"))


ReleaseFactory = Callable[[], Release]


@pytest.fixture
def make_release(
    helm: Path,
    control_plane: ControlPlane,
    kube: k.KubeRest,
    make_namespace: Any,
    stand_in_crds: None,
) -> Iterator[ReleaseFactory]:
    """``make_release() -> Release`` in a fresh namespace that enforces the restricted Pod Security
    level, as the kustomize base's namespace does. Whatever is still installed at the end is
    uninstalled, so no webhook configuration outlives its test."""
    releases: list[Release] = []

    def make() -> Release:
        namespace = make_namespace(labels=RESTRICTED, prefix="helm")
        release = Release(helm, control_plane, kube, f"rel-{secrets.token_hex(3)}", namespace)
        releases.append(release)
        return release

    yield make
    for release in releases:
        release.run("uninstall", release.name, "--ignore-not-found", check=False)
        for namespace in release.namespaces:
            kube.delete(f"/api/v1/namespaces/{namespace}")


def own_certificate(release: Release, out: Path) -> dict[str, Path]:
    """A CA and a serving certificate for the release's Service, from `irsa-webhook certs`."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "webhook", "certs", "--out", str(out)),
            *("--service-name", release.fullname, "--namespace", release.namespace),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return {name: out / name for name in ("ca.crt", "tls.crt", "tls.key")}


# The installs: every ci/*.yaml unchanged, plus pki.cert/pki.key given on the command line.
INSTALLS = [*CI_VALUES, "provided-certificate"]


def install_args(case: str, release: Release, tmp_path: Path) -> list[str]:
    """The values of CASE; prepares what it expects to exist already (its own Secret)."""
    if case == "provided-certificate":
        files = own_certificate(release, tmp_path / "certs")
        return [
            *("--set", "pki.certManager.enabled=false"),
            *("--set-file", f"pki.cert={files['tls.crt']}", "--set-file", f"pki.key={files['tls.key']}"),
            *("--set-file", f"pki.caBundle={files['ca.crt']}"),
        ]
    if case == "existing-secret":
        files = own_certificate(release, tmp_path / "certs")
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_OF_EXISTING},
            "type": "kubernetes.io/tls",
            "data": {name: base64.b64encode(path.read_bytes()).decode() for name, path in files.items()},
        }
        release.kube.create(f"/api/v1/namespaces/{release.namespace}/secrets", secret)
        return [*chart.values_args(case), "--set-file", f"pki.caBundle={files['ca.crt']}"]
    if case == "provisioner":
        # The controller's namespace, made beforehand: the dry run below cannot create it, and a
        # namespace the chart made would stay Terminating after uninstall without a
        # controller-manager. (provisioner.createNamespace is tested offline.)
        namespace = f"{release.namespace}-provisioner"
        release.kube.create_namespace(namespace, RESTRICTED)
        release.namespaces.append(namespace)
        return [
            *chart.values_args(case),
            *("--set", "provisioner.createNamespace=false", "--set", f"provisioner.namespace={namespace}"),
        ]
    return chart.values_args(case)


def strict_dry_run(release: Release, rendered: str) -> None:
    """Every object of the render through kube-apiserver's decoding, defaulting, validation and
    admission with strict field validation: an unknown or misplaced field is an error."""
    result = release.control_plane.kubectl(
        "create", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-", input=rendered, check=False
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "Warning" in line]
    if any(o["kind"] == "Deployment" and o["spec"]["template"]["spec"].get("hostNetwork") for o in documents(rendered)):
        # The one warning expected: the restricted namespace would refuse such pods (see below).
        assert warnings, result.stderr
        assert all("hostNetwork=true" in line for line in warnings), result.stderr
    else:
        assert warnings == [], result.stderr
    assert len(result.stdout.split()) == len(documents(rendered))


def check_webhook_reaches_the_service(release: Release, objs: list[k.JSON]) -> k.JSON:
    hook: k.JSON = one(objs, "MutatingWebhookConfiguration", release.fullname)["webhooks"][0]
    service_ref = hook["clientConfig"]["service"]
    assert service_ref == {"name": release.fullname, "namespace": release.namespace, "path": "/mutate", "port": 443}
    service = one(objs, "Service", release.fullname)
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == 443]
    pod = one(objs, "Deployment", release.fullname)["spec"]["template"]
    (box,) = pod["spec"]["containers"]
    assert port["targetPort"] in {p["name"] for p in box["ports"]}
    assert all(pod["metadata"]["labels"].get(key) == value for key, value in service["spec"]["selector"].items())
    return hook


def mounted_secret(objs: list[k.JSON], release: Release) -> str | None:
    """The Secret the webhook's certificate folder is, or None when the webhook writes it (self-managed)."""
    volumes = one(objs, "Deployment", release.fullname)["spec"]["template"]["spec"]["volumes"]
    (tls,) = [v for v in volumes if v["name"] == "tls"]
    if "emptyDir" in tls:
        return None
    name: str = tls["secret"]["secretName"]
    return name


def check_certificate(release: Release, objs: list[k.JSON], hook: k.JSON) -> None:
    secret_name = mounted_secret(objs, release)
    if secret_name is None:
        # Self-managed: no Secret and no caBundle rendered; the webhook makes both once it runs (no
        # kubelet here: tests/e2e/test_e2e_self_managed_certs.py runs it), named by its args.
        args = one(objs, "Deployment", release.fullname)["spec"]["template"]["spec"]["containers"][0]["args"]
        assert f"--self-managed-tls-secret={release.fullname}-certs" in args
        assert f"--self-managed-tls-webhook-configuration={release.fullname}" in args
        assert "caBundle" not in hook["clientConfig"]
        assert not any(o["kind"] == "Secret" for o in objs)
        return
    config = one(objs, "MutatingWebhookConfiguration", release.fullname)
    inject = config["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from")
    if inject is not None:
        # cert-manager issues and cainjector injects; neither runs here. What the chart promises is
        # the wiring: the annotation names a stored Certificate for the Service's DNS names, whose
        # Secret is the one the webhook serves from.
        namespace, _, name = inject.partition("/")
        certificate = release.kube.get(f"/apis/cert-manager.io/v1/namespaces/{namespace}/certificates/{name}")
        assert release.host in certificate["spec"]["dnsNames"]
        assert certificate["spec"]["secretName"] == secret_name
        assert "caBundle" not in hook["clientConfig"]
        return
    served = release.secret(secret_name)
    ca_bundle = base64.b64decode(hook["clientConfig"]["caBundle"])
    # What kube-apiserver checks when it calls https://<service>.<namespace>.svc: this must pass.
    chart.verify_serving_pair(ca_bundle, served["tls.crt"], served["tls.key"], release.host)


def check_rbac(release: Release, objs: list[k.JSON]) -> None:
    pod = one(objs, "Deployment", release.fullname)["spec"]["template"]["spec"]
    account = pod["serviceAccountName"]
    assert release.can(account, "list", "serviceaccounts")
    assert release.can(account, "watch", "serviceaccounts")
    assert release.can(account, "get", "serviceaccounts", namespace="team-a", name="app")
    for verb, resource in [("get", "secrets"), ("list", "pods"), ("update", "serviceaccounts"), ("create", "pods")]:
        assert not release.can(account, verb, resource, namespace="team-a"), (verb, resource)
    config_map_mode = any(o["kind"] == "ConfigMap" and o["metadata"]["name"] == "pod-identity-webhook" for o in objs)
    for verb in ("get", "list", "watch"):
        allowed = release.can(account, verb, "configmaps", namespace=release.namespace, name="pod-identity-webhook")
        assert allowed is config_map_mode
    assert not release.can(account, "get", "configmaps", namespace=release.namespace, name="other")
    self_managed = mounted_secret(objs, release) is None
    own = f"{release.fullname}-certs"
    for verb in ("get", "update"):
        assert release.can(account, verb, "secrets", namespace=release.namespace, name=own) is self_managed
        allowed = release.can(
            account, verb, "mutatingwebhookconfigurations", name=release.fullname, group="admissionregistration.k8s.io"
        )
        assert allowed is self_managed
        assert not release.can(account, verb, "secrets", namespace=release.namespace, name="other")
        assert not release.can(
            account, verb, "mutatingwebhookconfigurations", name="other", group="admissionregistration.k8s.io"
        )
    assert release.can(account, "create", "secrets", namespace=release.namespace) is self_managed
    assert not release.can(account, "list", "secrets", namespace=release.namespace)
    assert not release.can(account, "delete", "secrets", namespace=release.namespace, name=own)
    jobs = [o for o in objs if o["kind"] == "CronJob"]
    if jobs:
        auditor = jobs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"]
        evict = "--evict" in jobs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert release.can(auditor, "list", "pods")
        assert release.can(auditor, "list", "namespaces")
        assert release.can(auditor, "get", "serviceaccounts", namespace="team-a", name="app")
        assert release.can(auditor, "create", "pods/eviction", namespace="team-a", name="web-1") is evict
        assert not release.can(auditor, "delete", "pods", namespace="team-a")
        assert not release.can(auditor, "get", "secrets", namespace="team-a")
    check_provisioner_rbac(release, objs)


def check_provisioner_rbac(release: Release, objs: list[k.JSON]) -> None:
    """The chart's names hold together: the Lease --leader-election-name names and the token of its
    own account are the ones its Role allows (the whole table: test_e2e_provisioner_manifests.py)."""
    controllers = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-provisioner")]
    if not controllers:
        return
    pod = controllers[0]["spec"]["template"]["spec"]
    account, home = pod["serviceAccountName"], controllers[0]["metadata"]["namespace"]
    assert home != release.namespace  # where the webhook gives it credentials
    flags = dict(a.removeprefix("--").partition("=")[::2] for a in pod["containers"][0]["args"])
    lease = flags["leader-election-name"]

    def can(verb: str, resource: str, **where: str) -> bool:
        return release.can(account, verb, resource, account_namespace=home, **where)

    assert can("update", "leases", group="coordination.k8s.io", namespace=home, name=lease)
    assert not can("update", "leases", group="coordination.k8s.io", namespace=home, name="other")
    assert can("create", "serviceaccounts/token", namespace=home, name=account)
    assert not can("create", "serviceaccounts/token", namespace=home, name="default")
    assert can("patch", "irsaissuers/status", group="irsa-webhook.io", name="main")
    assert not can("update", "irsaissuers", group="irsa-webhook.io", name="main")
    assert can("patch", "irsaroles/status", group="irsa-webhook.io", namespace="team-a", name="app")
    assert can("patch", "serviceaccounts", namespace="team-a", name="app")
    assert not can("get", "secrets", namespace=home)
    # The tenants' role: IRSARoles, and nothing of the controller's (the whole table:
    # test_e2e_provisioner_manifests.py).
    (tenant,) = [o for o in objs if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith("-tenant")]
    assert tenant["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert {r for rule in tenant["rules"] for r in rule["resources"]} == {"irsaroles", "irsaroles/status"}


def check_pod_security(release: Release, objs: list[k.JSON]) -> None:
    """A pod made from the Deployment's template, in the release namespace (restricted enforced)."""
    template = one(objs, "Deployment", release.fullname)["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": f"{release.fullname}-probe"},
        "spec": template["spec"],
    }
    path = f"/api/v1/namespaces/{release.namespace}/pods"
    if template["spec"].get("hostNetwork"):
        # hostNetwork is below the baseline level: a namespace that enforces restricted refuses it,
        # as values.yaml says; such a release needs a namespace of a lower level.
        with pytest.raises(k.KubeApiError) as refused:
            release.kube.create(path, pod, dry_run=True)
        assert "hostNetwork" in refused.value.message
        return
    created = release.kube.create(path, pod, dry_run=True)
    assert release.kube.last_warnings == []
    # The Priority admission plugin resolved system-cluster-critical outside kube-system.
    assert created["spec"]["priority"] >= 2_000_000_000


def wait_until_no_longer_called(release: Release, failure_policy: str) -> None:
    """A configuration that fails closed may still be in kube-apiserver's cache for a moment after its
    deletion: wait until pods elsewhere are admitted again, so no later test meets it."""
    if failure_policy != "Fail":
        return
    probe = f"helm-probe-{secrets.token_hex(3)}"
    release.kube.create_namespace(probe, {})
    try:
        wait_for(
            lambda: release.kube.create_pod(probe, k.pod("probe"), dry_run=True),
            timeout=CONFIG_PROPAGATION_TIMEOUT,
            what=f"kube-apiserver to stop calling {release.fullname}",
        )
    finally:
        release.kube.delete(f"/api/v1/namespaces/{probe}")


@pytest.mark.parametrize("case", INSTALLS)
def test_install_and_uninstall(make_release: ReleaseFactory, tmp_path: Path, case: str) -> None:
    release = make_release()
    values = install_args(case, release, tmp_path)
    strict_dry_run(release, release.template(*values))

    notes = release.install(*values)
    assert f"is installed as {release.fullname} in namespace {release.namespace}" in notes
    manifest = release.manifest()
    objs = release.stored(manifest)
    assert len(objs) == len(documents(manifest))
    hook = check_webhook_reaches_the_service(release, objs)
    check_certificate(release, objs, hook)
    check_rbac(release, objs)
    check_pod_security(release, objs)
    if case == "community-values":
        # The community chart's keys that this chart does not honour are named, not silently dropped.
        assert "Ignored (accepted so that community chart values files install unchanged): " in notes
        assert "securityContext, podSecurityContext, readinessProbe." in notes

    release.uninstall()
    # The CRDs stay: deleting one would delete every object of its kind. Deleted here, so that the
    # next owner of the CRDs (another release, another test) can take them.
    kept = PROVISIONER_CRDS if case == "provisioner" else []
    assert sorted(release.left_over(manifest)) == sorted(kept)
    for name in kept:
        release.control_plane.kubectl("delete", "--wait=true", "--timeout=30s", name)
    assert not release.kube.exists(
        f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{release.fullname}"
    )
    # Nothing of the release's either, its record included (helm keeps it in Secrets of the namespace).
    secrets_left = release.kube.get(f"/api/v1/namespaces/{release.namespace}/secrets")["items"]
    assert [s["metadata"]["name"] for s in secrets_left] == ([SECRET_OF_EXISTING] if case == "existing-secret" else [])
    wait_until_no_longer_called(release, hook["failurePolicy"])


def test_upgrade_keeps_the_ca_bundle_the_webhook_wrote(make_release: ReleaseFactory) -> None:
    """Self-managed: the chart renders no caBundle and the webhook writes one. `helm upgrade` (a
    three-way merge against a manifest that never set the field) leaves it alone."""
    release = make_release()
    values = chart.values_args("self-managed-certificate")
    release.install(*values)
    path = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{release.fullname}"
    config = release.webhook_configuration()
    assert "caBundle" not in config["webhooks"][0]["clientConfig"]
    bundle = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n").decode()
    config["webhooks"][0]["clientConfig"]["caBundle"] = bundle  # what the webhook's update does
    release.kube.request("PUT", path, config)

    release.upgrade(*values, "--set", "replicaCount=3")
    deployment = release.kube.get(f"/apis/apps/v1/namespaces/{release.namespace}/deployments/{release.fullname}")
    assert deployment["spec"]["replicas"] == 3  # the upgrade was applied
    assert release.webhook_configuration()["webhooks"][0]["clientConfig"]["caBundle"] == bundle
    release.uninstall()


def test_existing_secret_needs_its_ca(make_release: ReleaseFactory) -> None:
    """pki.existingSecret without pki.caBundle stops the install with a message instead of a webhook
    configuration that trusts nothing (which, failing closed, would block every pod)."""
    release = make_release()
    result = release.run(
        "install",
        release.name,
        str(chart.CHART),
        *("--set", "pki.certManager.enabled=false", "--set", f"pki.existingSecret={SECRET_OF_EXISTING}"),
        check=False,
    )
    assert result.returncode != 0
    assert "pki.existingSecret needs pki.caBundle" in result.stderr
    assert not release.kube.exists(
        f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{release.fullname}"
    )
