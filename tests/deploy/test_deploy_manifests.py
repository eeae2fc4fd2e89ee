"""What the rendered overlays promise: hardening, availability, the webhook's selectors and the wiring
between objects (certificates, Secrets, Services, selectors) that kustomize alone does not check.

Every overlay under manifests/overlays is rendered with the project's kubectl (see render.py); the
API server's own schema check of the same output is tests/e2e/test_e2e_manifests.py.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from tests.support.paths import MANIFESTS
from webhook.options.flags import parse_duration

from .objects import (
    EXIT_MARGIN_SECONDS,
    EXPECTED,
    NAMESPACE,
    OVERLAYS,
    SKIP_LABEL,
    Obj,
    Rendered,
    container_of,
    kinds,
    one,
    selects,
)
from .render import COMPONENT_RENDERS

# The args of the base Deployment: upstream-compatible flag names, then the SIGTERM drain (ours).
BASE_ARGS = [
    "--port=8443",
    "--metrics-port=9999",
    "--tls-cert=/etc/webhook/certs/tls.crt",
    "--tls-key=/etc/webhook/certs/tls.key",
    "--annotation-prefix=eks.amazonaws.com",
    "--token-audience=sts.amazonaws.com",
    "--shutdown-delay=5s",
    "--shutdown-timeout=20s",
]


def webhook_of(objs: list[Obj]) -> Obj:
    config = one(objs, "MutatingWebhookConfiguration", "irsa-webhook")
    assert len(config["webhooks"]) == 1
    hook: Obj = config["webhooks"][0]
    return hook


def test_every_overlay_is_expected() -> None:
    # A new overlay must state its intent here (and so get the checks below).
    assert sorted(EXPECTED) == OVERLAYS


def test_every_component_is_used_by_an_overlay() -> None:
    used = set()
    for name in OVERLAYS:
        kustomization = yaml.safe_load((MANIFESTS / "overlays" / name / "kustomization.yaml").read_text())
        used |= {Path(c).name for c in kustomization.get("components", [])}
    used |= {c for components in COMPONENT_RENDERS.values() for c in components}  # rendered on their own
    assert used == {p.name for p in (MANIFESTS / "components").iterdir()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_objects_of_the_overlay(rendered: Rendered, overlay: str) -> None:
    objs = rendered[overlay]
    base = {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "MutatingWebhookConfiguration",
    }
    expected = base | ({"Issuer", "Certificate"} if EXPECTED[overlay]["certs"] == "cert-manager" else {"Secret"})
    expected |= {"ServiceMonitor"} if EXPECTED[overlay]["monitor"] else set()
    expected |= {"Role", "RoleBinding"} if EXPECTED[overlay]["config_map"] else set()
    assert kinds(objs) == expected
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}
    for obj in objs:
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"].get("namespace") == NAMESPACE, obj["metadata"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rbac_is_read_only_on_service_accounts(rendered: Rendered, overlay: str) -> None:
    objs = rendered[overlay]
    assert one(objs, "ClusterRole")["rules"] == [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list", "watch"]}
    ]
    if not EXPECTED[overlay]["config_map"]:  # the one namespaced Role is the ConfigMap mode's
        assert not kinds(objs) & {"Role", "RoleBinding"}
    binding = one(objs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "irsa-webhook"
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": NAMESPACE}
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_is_hardened_and_highly_available(rendered: Rendered, overlay: str) -> None:
    objs = rendered[overlay]
    deployment = one(objs, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["priorityClassName"] == "system-cluster-critical"
    labels = spec["template"]["metadata"]["labels"]
    assert selects(spec["selector"], labels)
    spread = pod["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert all(selects(c["labelSelector"], labels) for c in spread)
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert selects(pdb["spec"]["selector"], labels)

    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = container_of(objs)
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"memory"}  # no CPU limit: see deployment.yaml


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_container_args_ports_probes_and_image(rendered: Rendered, overlay: str) -> None:
    container = container_of(rendered[overlay])
    assert "command" not in container  # the image's ENTRYPOINT is `irsa-webhook serve`
    assert container["args"][: len(BASE_ARGS)] == BASE_ARGS
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"https": 8443, "metrics": 9999}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert container["image"] == f"irsa-webhook:{EXPECTED[overlay]['tag']}"
    # kind: the image is `kind load`ed into the nodes and must never be pulled.
    assert container["imagePullPolicy"] == "IfNotPresent"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/webhook/certs"]["readOnly"] is True
    assert "subPath" not in mounts["/etc/webhook/certs"]  # subPath mounts never see rotated files


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_reach_the_named_ports(rendered: Rendered, overlay: str) -> None:
    objs = rendered[overlay]
    labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    webhook = one(objs, "Service", "irsa-webhook")
    assert webhook["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]
    assert selects({"matchLabels": webhook["spec"]["selector"]}, labels)
    metrics = one(objs, "Service", "irsa-webhook-metrics")
    assert metrics["spec"]["ports"] == [{"name": "metrics", "port": 9999, "targetPort": "metrics", "protocol": "TCP"}]
    assert selects({"matchLabels": metrics["spec"]["selector"]}, labels)
    if EXPECTED[overlay]["monitor"]:
        monitor = one(objs, "ServiceMonitor")
        assert selects(monitor["spec"]["selector"], metrics["metadata"]["labels"])
        assert not selects(monitor["spec"]["selector"], webhook["metadata"]["labels"])
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_webhook_configuration(rendered: Rendered, overlay: str) -> None:
    hook = webhook_of(rendered[overlay])
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert hook["sideEffects"] == "None"
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["timeoutSeconds"] == 10
    assert hook["matchPolicy"] == "Equivalent"
    assert hook["failurePolicy"] == EXPECTED[overlay]["failure_policy"]
    assert hook["clientConfig"]["service"] == {
        "name": "irsa-webhook",
        "namespace": NAMESPACE,
        "path": "/mutate",
        "port": 443,
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize(
    ("namespace", "pod_labels", "called"),
    [
        pytest.param("team-a", {"app": "api"}, True, id="ordinary-pod"),
        pytest.param("team-a", {SKIP_LABEL: "true"}, False, id="skip-label-true"),
        # Upstream's selector is DoesNotExist: the label's presence, whatever its value, skips.
        pytest.param("team-a", {SKIP_LABEL: "false"}, False, id="skip-label-any-value"),
        pytest.param(NAMESPACE, {"app": "other"}, False, id="webhook-namespace"),
        pytest.param("team-a", None, False, id="webhook-own-pods-anywhere"),
    ],
)
def test_which_pods_the_webhook_is_called_for(
    rendered: Rendered, overlay: str, namespace: str, pod_labels: dict[str, str] | None, called: bool
) -> None:
    objs = rendered[overlay]
    hook = webhook_of(objs)
    if pod_labels is None:  # the webhook's own pod template
        pod_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    namespace_labels = {"kubernetes.io/metadata.name": namespace}
    namespace_ok = selects(hook["namespaceSelector"], namespace_labels)
    assert (namespace_ok and selects(hook["objectSelector"], pod_labels)) is called


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kube_system_is_served_only_when_failing_open(rendered: Rendered, overlay: str) -> None:
    """IRSA workloads run in kube-system (VPC CNI, EBS CSI, load balancer controller, autoscaler,
    external-dns) and upstream serves them: failing open cannot block a pod, so they are mutated.
    Failing closed could keep the cluster's own components from starting, so kube-system is left out."""
    hook = webhook_of(rendered[overlay])
    labels = {"kubernetes.io/metadata.name": "kube-system"}
    pod_labels = {"k8s-app": "aws-node"}
    called = selects(hook["namespaceSelector"], labels) and selects(hook["objectSelector"], pod_labels)
    assert called is (hook["failurePolicy"] == "Ignore")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_covers_the_shutdown_drain(rendered: Rendered, overlay: str) -> None:
    """SIGTERM: /readyz 503 and still serving for --shutdown-delay, then in-flight requests for at most
    --shutdown-timeout; the kubelet must not SIGKILL the pod before both are over."""
    objs = rendered[overlay]
    values = {name: value for name, _, value in (a.partition("=") for a in container_of(objs)["args"])}
    # Read with the server's own duration parser.
    delay = parse_duration(values["--shutdown-delay"])
    timeout = parse_duration(values["--shutdown-timeout"])
    assert delay == 5
    grace = one(objs, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= delay + timeout + EXIT_MARGIN_SECONDS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespace_label_bypasses_the_webhook(rendered: Rendered, overlay: str) -> None:
    hook = webhook_of(rendered[overlay])
    labels = {"kubernetes.io/metadata.name": "team-a", SKIP_LABEL: "true"}
    assert not selects(hook["namespaceSelector"], labels)


@pytest.mark.parametrize("overlay", [o for o in OVERLAYS if EXPECTED[o]["certs"] == "cert-manager"])
def test_cert_manager_wiring(rendered: Rendered, overlay: str) -> None:
    objs = rendered[overlay]
    config = one(objs, "MutatingWebhookConfiguration")
    hook = webhook_of(objs)
    assert "caBundle" not in hook["clientConfig"]  # cainjector owns it
    serving = one(objs, "Certificate", "irsa-webhook-serving-cert")
    annotation = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == f"{serving['metadata']['namespace']}/{serving['metadata']['name']}"
    service = hook["clientConfig"]["service"]
    host = f"{service['name']}.{service['namespace']}.svc"
    assert serving["spec"]["dnsNames"] == [host, f"{host}.cluster.local"]
    volumes = one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert serving["spec"]["secretName"] in {v["secret"]["secretName"] for v in volumes if "secret" in v}
    # The serving certificate comes from a CA Issuer whose CA is a separate, long-lived Certificate,
    # so a serving-certificate renewal never changes the injected caBundle.
    ca_issuer = one(objs, "Issuer", serving["spec"]["issuerRef"]["name"])
    ca_cert = one(objs, "Certificate", "irsa-webhook-ca")
    assert ca_cert["spec"]["isCA"] is True
    assert ca_issuer["spec"]["ca"]["secretName"] == ca_cert["spec"]["secretName"]
    assert one(objs, "Issuer", ca_cert["spec"]["issuerRef"]["name"])["spec"] == {"selfSigned": {}}


@pytest.mark.parametrize("overlay", [o for o in OVERLAYS if EXPECTED[o]["certs"] == "self-signed"])
def test_self_signed_wiring(rendered: Rendered, overlay: str) -> None:
    objs = rendered[overlay]
    secret = one(objs, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    # The content hash in the name makes new certificates roll the Deployment.
    assert secret["metadata"]["name"].startswith("irsa-webhook-tls-")
    volumes = one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert secret["metadata"]["name"] in {v["secret"]["secretName"] for v in volumes if "secret" in v}
    hook = webhook_of(objs)
    ca_bundle = base64.b64decode(hook["clientConfig"]["caBundle"])
    assert ca_bundle == base64.b64decode(secret["data"]["ca.crt"])
    assert ca_bundle.startswith(b"-----BEGIN CERTIFICATE-----")
    assert "cert-manager.io/inject-ca-from" not in one(objs, "MutatingWebhookConfiguration")["metadata"].get(
        "annotations", {}
    )


def test_every_checkov_skip_names_a_check_and_a_reason() -> None:
    """Accepted scan findings live as annotations on the object they concern, each with its reason."""
    skips = []
    # The Helm chart's templates are not YAML until rendered: test_deploy_helm.py checks its renders.
    for path in (p for p in MANIFESTS.rglob("*.yaml") if "helm" not in p.relative_to(MANIFESTS).parts):
        for doc in yaml.safe_load_all(path.read_text()):
            annotations = (doc or {}).get("metadata", {}).get("annotations", {}) or {}
            skips += [(path.name, v) for k, v in annotations.items() if k.startswith("checkov.io/skip")]
    assert skips, "the Deployment documents its accepted findings"
    for where, value in skips:
        check, _, reason = value.partition("=")
        assert check.startswith(("CKV_K8S_", "CKV2_K8S_")), (where, value)
        assert len(reason.split()) >= 5, f"{where}: {check} needs a reason"
