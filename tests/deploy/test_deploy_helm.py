"""The Helm chart (manifests/helm/irsa-webhook), rendered with the project's helm for the default values
and every documented example (ci/*.yaml): what its objects promise, that its default render is the
kustomize default overlay (and ci/dev.yaml the dev overlay) in everything that matters, the three ways
of getting a certificate, the community chart's values keys, and the modes.

Renders use release irsa-webhook in namespace irsa-webhook, whose object names are the kustomize
base's. The same renders go through checkov (test_deploy_scan.py) and, installed into a real API
server, through tests/e2e/test_e2e_helm.py.
"""

from __future__ import annotations

import base64
import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.certs import cli_certs
from tests.support.paths import REPO
from webhook.options.flags import parse_duration
from webhook.sources.configmap import CONFIG_MAP_NAME, parse_config
from webhook.sources.podidentity import parse_identities

from . import helm as chart
from .objects import (
    EXIT_MARGIN_SECONDS,
    SKIP_LABEL,
    Obj,
    Rendered,
    assert_configmap_rbac,
    kinds,
    one,
    selects,
    serve_config_of,
)
from .render import documents

NAMESPACE = chart.NAMESPACE
FULLNAME = "irsa-webhook"  # release irsa-webhook: the release name alone (it contains the chart name)
HOST = f"{FULLNAME}.{NAMESPACE}.svc"
COMPONENT = "app.kubernetes.io/component"
SERVICE_ACCOUNT_RULE = {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list", "watch"]}
POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "fsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def expect(**overrides: Any) -> dict[str, Any]:
    base = {
        "certs": "cert-manager",  # cert-manager | self-managed | existing
        "issuer": "own",  # cert-manager: the chart's CA, or an existing issuer
        "failure_policy": "Ignore",
        "monitor": False,
        "config_map": False,
        "pod_identity": False,
        "audit": False,
        "provisioner": False,  # test_deploy_provisioner.py checks its objects
        "replicas": 2,
        "host_network": False,
        "ports": (8443, 9999),
        "tag": "0.1.0",
    }
    assert set(overrides) <= set(base)
    return base | overrides


# What each render is meant to be; a new ci/*.yaml must state its intent here.
EXPECTED = {
    "helm-default": expect(),
    "helm-community-values": expect(monitor=True, config_map=True, replicas=3),
    "helm-dev": expect(failure_policy="Fail", monitor=True, config_map=True, tag="dev"),
    "helm-existing-issuer": expect(issuer="existing"),
    "helm-existing-secret": expect(certs="existing", replicas=1),
    "helm-host-network": expect(config_map=True, host_network=True, ports=(10443, 10999)),
    "helm-modes": expect(pod_identity=True, audit=True),
    "helm-provisioner": expect(provisioner=True),
    "helm-self-managed-certificate": expect(certs="self-managed"),
}
RENDERS = sorted(EXPECTED)
CERT_MANAGER_RENDERS = [r for r in RENDERS if EXPECTED[r]["certs"] == "cert-manager"]
SECRET = f"{FULLNAME}-certs"  # self-managed: the Secret the webhook keeps
WEBHOOK_CONFIGURATION_RULE = {
    "apiGroups": ["admissionregistration.k8s.io"],
    "resources": ["mutatingwebhookconfigurations"],
    "resourceNames": [FULLNAME],
    "verbs": ["get", "update"],
}
SECRET_RULES = [
    {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET], "verbs": ["get", "update"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
]


def deployment(objs: list[Obj]) -> Obj:
    return one(objs, "Deployment", FULLNAME)


def container(objs: list[Obj]) -> Obj:
    containers = deployment(objs)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: Obj = containers[0]
    return found


def webhook(objs: list[Obj]) -> Obj:
    config = one(objs, "MutatingWebhookConfiguration", FULLNAME)
    assert len(config["webhooks"]) == 1
    found: Obj = config["webhooks"][0]
    return found


def audit_pod_labels(objs: list[Obj]) -> dict[str, str]:
    labels: dict[str, str] = one(objs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    return labels


def b64(data: str) -> bytes:
    return base64.b64decode(data)


# --- the chart itself -----------------------------------------------------------------------------


def test_chart_version_is_the_package_version(chart_rendered: Rendered) -> None:
    package = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    meta = yaml.safe_load((chart.CHART / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2"
    assert meta["version"] == package
    assert meta["appVersion"] == package
    # The default image is the release's, as the kustomize base pins it.
    base = yaml.safe_load((REPO / "manifests" / "base" / "kustomization.yaml").read_text())
    assert base["images"][0]["newTag"] == package
    assert container(chart_rendered["helm-default"])["image"] == f"irsa-webhook:{package}"


def test_every_values_example_is_expected() -> None:
    assert sorted(chart.render_name(v) for v in [None, *chart.ci_values()]) == RENDERS


@pytest.mark.parametrize("values", [None, *chart.ci_values()], ids=lambda v: v or "default")
def test_helm_lint_passes(helm: Path, values: str | None) -> None:
    result = chart.lint(helm, values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


@pytest.mark.parametrize("render", RENDERS)
def test_objects_of_the_render(chart_rendered: Rendered, render: str) -> None:
    objs = chart_rendered[render]
    want = EXPECTED[render]
    expected = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"}
    expected |= {"MutatingWebhookConfiguration"}
    expected |= {"PodDisruptionBudget"} if want["replicas"] > 1 else set()
    expected |= {"Issuer", "Certificate"} if want["certs"] == "cert-manager" and want["issuer"] == "own" else set()
    expected |= {"Certificate"} if want["certs"] == "cert-manager" else set()
    expected |= {"Role", "RoleBinding"} if want["certs"] == "self-managed" else set()
    expected |= {"ServiceMonitor"} if want["monitor"] else set()
    expected |= {"Role", "RoleBinding", "ConfigMap"} if want["config_map"] else set()
    expected |= {"ConfigMap"} if want["pod_identity"] else set()
    expected |= {"CronJob"} if want["audit"] else set()
    provisioner = {"CustomResourceDefinition", "Namespace", "ConfigMap", "Role", "RoleBinding", "Deployment"}
    expected |= provisioner if want["provisioner"] else set()
    assert kinds(objs) == expected
    cluster_scoped = {
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "CustomResourceDefinition",
        "Namespace",
    }
    for obj in objs:
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == chart.RELEASE
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"]
        elif obj["metadata"]["labels"][COMPONENT] == "provisioner":
            # Its own namespace, where the webhook gives it credentials (test_deploy_provisioner.py).
            assert obj["metadata"]["namespace"] == f"{FULLNAME}-provisioner", obj["metadata"]
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]  # the release namespace


# --- the kustomize overlays, rendered by the chart ------------------------------------------------


def comparable(obj: Obj) -> Obj:
    """OBJ without what is allowed to differ between the chart and the overlays: labels, annotations
    (compared separately) and label selectors, which the chart scopes to the release and component
    (that they select the right pods is tested below, render by render)."""
    obj = copy.deepcopy(obj)
    obj["metadata"].pop("labels", None)
    obj["metadata"].pop("annotations", None)
    spec = obj.get("spec", {})
    if obj["kind"] in {"Deployment", "PodDisruptionBudget", "ServiceMonitor"}:
        spec.pop("selector")
    if obj["kind"] == "Service":
        spec.pop("selector")
        assert spec.pop("type", "ClusterIP") == "ClusterIP"
    if obj["kind"] == "Deployment":
        spec["template"].pop("metadata")
        for constraint in spec["template"]["spec"]["topologySpreadConstraints"]:
            constraint.pop("labelSelector")
    return obj


def checkov_skips(obj: Obj) -> set[str]:
    annotations = obj["metadata"].get("annotations", {})
    return {v.partition("=")[0] for k, v in annotations.items() if k.startswith("checkov.io/skip")}


@pytest.mark.parametrize(
    ("render", "overlay", "chart_only"),
    [
        pytest.param("helm-default", "default", set(), id="default"),
        # The chart renders ConfigMap mode's map from config.podIdentityWebhookMap.data (as the
        # community chart does); the kustomize component leaves creating it to the user.
        pytest.param("helm-dev", "dev", {("ConfigMap", CONFIG_MAP_NAME)}, id="dev"),
    ],
)
def test_render_is_the_kustomize_overlay(
    chart_rendered: Rendered, rendered: Rendered, render: str, overlay: str, chart_only: set[tuple[str, str]]
) -> None:
    """Same objects (the release namespace is not the chart's to create), names, webhook rules and
    selectors, failure policy, RBAC, security context, args, probes, resources, certificates."""
    helm_objs = {(o["kind"], o["metadata"]["name"]): o for o in chart_rendered[render]}
    kustomize_objs = {(o["kind"], o["metadata"]["name"]): o for o in rendered[overlay] if o["kind"] != "Namespace"}
    assert set(helm_objs) - chart_only == set(kustomize_objs)
    for key, expected in kustomize_objs.items():
        got = helm_objs[key]
        assert comparable(got) == comparable(expected), key
        assert checkov_skips(got) == checkov_skips(expected), key
        if key[0] == "MutatingWebhookConfiguration":
            assert got["metadata"]["annotations"] == expected["metadata"]["annotations"]
    # Both select the same pods for the webhook: the overlay's objectSelector, in the chart too.
    hook = webhook(chart_rendered[render])
    assert hook["objectSelector"] == webhook_of_overlay(rendered[overlay])["objectSelector"]


def webhook_of_overlay(objs: list[Obj]) -> Obj:
    found: Obj = one(objs, "MutatingWebhookConfiguration", "irsa-webhook")["webhooks"][0]
    return found


# --- what every render promises ------------------------------------------------------------------


@pytest.mark.parametrize("render", RENDERS)
def test_rbac_is_least_privilege(chart_rendered: Rendered, render: str) -> None:
    objs = chart_rendered[render]
    want = EXPECTED[render]
    self_managed = want["certs"] == "self-managed"
    # Self-managed certificates: the caBundle of its own configuration, by name (get, update).
    assert one(objs, "ClusterRole", FULLNAME)["rules"] == [SERVICE_ACCOUNT_RULE] + (
        [WEBHOOK_CONFIGURATION_RULE] if self_managed else []
    )
    binding = one(objs, "ClusterRoleBinding", FULLNAME)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME}
    pod = deployment(objs)["spec"]["template"]["spec"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": NAMESPACE}
    ]
    assert one(objs, "ServiceAccount", pod["serviceAccountName"])
    # The audit's own RBAC is test_audit_cronjob's, the provisioner's test_deploy_provisioner.py's.
    webhook_objs = [o for o in objs if o["metadata"]["labels"][COMPONENT] not in {"audit", "provisioner"}]
    if self_managed:
        role = one(webhook_objs, "Role", f"{FULLNAME}-certs")
        assert role["rules"] == SECRET_RULES
        binding = one(webhook_objs, "RoleBinding", f"{FULLNAME}-certs")
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": NAMESPACE}
        ]
        webhook_objs = [o for o in webhook_objs if not o["metadata"]["name"].endswith("-certs")]
    if want["config_map"]:
        assert_configmap_rbac(webhook_objs, NAMESPACE)
    else:
        assert not kinds(webhook_objs) & {"Role", "RoleBinding"}


@pytest.mark.parametrize("render", RENDERS)
def test_deployment_is_hardened_and_highly_available(chart_rendered: Rendered, render: str) -> None:
    objs = chart_rendered[render]
    want = EXPECTED[render]
    spec = deployment(objs)["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["replicas"] == want["replicas"]
    assert selects(spec["selector"], labels)
    rolling = spec["strategy"]["rollingUpdate"]
    # In the host's network a surge pod would wait for the ports of the pod it replaces.
    assert (rolling["maxSurge"], rolling["maxUnavailable"]) == ((0, 1) if want["host_network"] else (1, 0))
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod.get("hostNetwork", False) is want["host_network"]
    spread = pod["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert all(selects(c["labelSelector"], labels) for c in spread)
    pdbs = [o for o in objs if o["kind"] == "PodDisruptionBudget"]
    if want["replicas"] > 1:
        assert pdbs[0]["spec"]["minAvailable"] == 1
        assert selects(pdbs[0]["spec"]["selector"], labels)
    else:  # minAvailable 1 of 1 would block every drain
        assert pdbs == []
    assert pod["securityContext"] == POD_SECURITY_CONTEXT
    assert container(objs)["securityContext"] == CONTAINER_SECURITY_CONTEXT
    resources = container(objs)["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"memory"}  # no CPU limit: see deployment.yaml
    assert pod["automountServiceAccountToken"] is True
    assert pod["enableServiceLinks"] is False
    expected_skips = {"CKV_K8S_11", "CKV_K8S_15", "CKV_K8S_38", "CKV_K8S_43", "CKV2_K8S_6"}
    expected_skips |= {"CKV_K8S_19"} if want["host_network"] else set()
    assert checkov_skips(deployment(objs)) == expected_skips


@pytest.mark.parametrize("render", RENDERS)
def test_container_args_are_serve_flags(chart_rendered: Rendered, render: str) -> None:
    """The args, as serve's own parser reads them: every flag the chart renders exists and its value
    is accepted; ports, certificate paths and the SIGTERM drain are wired to the rest of the pod."""
    objs = chart_rendered[render]
    want = EXPECTED[render]
    box = container(objs)
    assert "command" not in box  # the image's ENTRYPOINT is `irsa-webhook serve`
    config = serve_config_of(box, NAMESPACE)
    webhook_port, metrics_port = want["ports"]
    assert (config.port, config.metrics_port) == (webhook_port, metrics_port)
    assert {p["name"]: p["containerPort"] for p in box["ports"]} == {"https": webhook_port, "metrics": metrics_port}
    mounts = {m["mountPath"]: m for m in box["volumeMounts"]}
    assert (config.tls_cert, config.tls_key) == ("/etc/webhook/certs/tls.crt", "/etc/webhook/certs/tls.key")
    # Self-managed: the webhook writes the pair it serves there itself.
    assert mounts["/etc/webhook/certs"].get("readOnly", False) is (want["certs"] != "self-managed")
    assert (config.self_managed_tls is not None) is (want["certs"] == "self-managed")
    assert all("subPath" not in m for m in box["volumeMounts"])  # subPath mounts never see updates
    assert box["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert box["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert box["image"] == f"irsa-webhook:{want['tag']}"
    assert box["imagePullPolicy"] == "IfNotPresent"
    assert config.watch_config_map is want["config_map"]
    if want["config_map"]:
        assert config.namespace == NAMESPACE  # the ConfigMap is read where the webhook runs
    assert bool(config.container_credentials_config) is want["pod_identity"]
    assert config.shutdown_delay == parse_duration("5s")
    grace = deployment(objs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= config.shutdown_delay + config.shutdown_timeout + EXIT_MARGIN_SECONDS


def test_community_values_mean_what_they_meant(chart_rendered: Rendered) -> None:
    """ci/community-values.yaml, as the webhook reads its render: each community key reached the flag
    or field it controls in the community chart."""
    objs = chart_rendered["helm-community-values"]
    config = serve_config_of(container(objs), NAMESPACE)
    settings = config.settings
    assert settings.aws_default_region == "eu-west-1"
    assert settings.sts_regional_endpoint is True
    assert settings.token_expiration == 86400
    assert settings.token_audience == "sts.amazonaws.com"
    assert settings.token_mount_path == "/var/run/secrets/eks.amazonaws.com/serviceaccount"
    assert config.verbosity == 2  # config.extraArgs
    assert config.watch_config_map is True
    pod = deployment(objs)["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "platform"
    assert pod["metadata"]["annotations"] == {"example.com/scrape": "false"}
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"] == [{"key": "CriticalAddonsOnly", "operator": "Exists"}]
    assert "nodeAffinity" in pod["spec"]["affinity"]
    assert container(objs)["resources"]["requests"] == {"cpu": "50m", "memory": "96Mi"}
    certificate = one(objs, "Certificate", f"{FULLNAME}-serving-cert")["spec"]
    assert (certificate["duration"], certificate["renewBefore"]) == ("2160h", "360h")
    monitor = one(objs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["interval"] == "60s"
    assert monitor["spec"]["endpoints"][0]["scrapeTimeout"] == "10s"
    config_map = one(objs, "ConfigMap", CONFIG_MAP_NAME)
    assert json.loads(config_map["data"]["config"]) == {
        # The key and values were templates: {{ .Release.Namespace }}, {{ .Values.global.awsRoleArn }}.
        f"{NAMESPACE}/reports": {"RoleARN": "arn:aws:iam::111122223333:role/reports", "Audience": "sts.amazonaws.com"},
        "batch/nightly": {
            "RoleARN": "arn:aws:iam::111122223333:role/nightly",
            "UseRegionalSTS": True,
            "TokenExpiration": 3600,
        },
    }
    assert one(objs, "MutatingWebhookConfiguration")["metadata"]["annotations"]["example.com/owner"] == "platform"
    # securityContext, podSecurityContext and readinessProbe are the community chart's own defaults,
    # weaker than ours: accepted, and ignored (the notes of an install say so, see the e2e test).
    assert container(objs)["securityContext"] == CONTAINER_SECURITY_CONTEXT
    assert container(objs)["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("render", RENDERS)
@pytest.mark.parametrize(
    ("namespace", "pod_labels", "called"),
    [
        pytest.param("team-a", {"app": "api"}, True, id="ordinary-pod"),
        pytest.param("team-a", {SKIP_LABEL: "true"}, False, id="skip-label-true"),
        # Upstream's selector is DoesNotExist: the label's presence, whatever its value, skips.
        pytest.param("team-a", {SKIP_LABEL: "false"}, False, id="skip-label-any-value"),
        pytest.param(NAMESPACE, {"app": "other"}, False, id="release-namespace"),
        pytest.param("team-a", "webhook", False, id="chart-webhook-pods-anywhere"),
        pytest.param("team-a", "audit", False, id="chart-audit-pods-anywhere"),
        pytest.param("kube-system", {"k8s-app": "aws-node"}, "when-failing-open", id="kube-system"),
    ],
)
def test_which_pods_the_webhook_is_called_for(
    chart_rendered: Rendered, render: str, namespace: str, pod_labels: dict[str, str] | str, called: bool | str
) -> None:
    objs = chart_rendered[render]
    hook = webhook(objs)
    if pod_labels == "webhook":
        pod_labels = deployment(objs)["spec"]["template"]["metadata"]["labels"]
    elif pod_labels == "audit":  # the audit Job's pods carry the same name label (when rendered)
        pod_labels = {**deployment(objs)["spec"]["template"]["metadata"]["labels"], COMPONENT: "audit"}
    assert isinstance(pod_labels, dict)
    if called == "when-failing-open":
        # Failing closed could keep the cluster's own components from starting: kube-system is left out.
        called = hook["failurePolicy"] == "Ignore"
    assert hook["failurePolicy"] == EXPECTED[render]["failure_policy"]
    namespace_ok = selects(hook["namespaceSelector"], {"kubernetes.io/metadata.name": namespace})
    assert (namespace_ok and selects(hook["objectSelector"], pod_labels)) is called
    # The emergency switch per namespace.
    assert not selects(hook["namespaceSelector"], {"kubernetes.io/metadata.name": "team-a", SKIP_LABEL: "true"})


def test_user_selectors_narrow_the_charts_own(chart_rendered: Rendered) -> None:
    """mutatingWebhook.namespaceSelector and objectSelector (community keys) are ANDed with the chart's
    own expressions: they can leave more out, never bring the webhook's own namespace or pods back."""
    hook = webhook(chart_rendered["helm-community-values"])
    assert not selects(hook["namespaceSelector"], {"kubernetes.io/metadata.name": "kube-node-lease"})
    assert selects(hook["namespaceSelector"], {"kubernetes.io/metadata.name": "team-a"})
    assert not selects(hook["objectSelector"], {"example.com/no-aws": ""})
    assert not selects(hook["namespaceSelector"], {"kubernetes.io/metadata.name": NAMESPACE})


@pytest.mark.parametrize("render", RENDERS)
def test_webhook_configuration(chart_rendered: Rendered, render: str) -> None:
    objs = chart_rendered[render]
    hook = webhook(objs)
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
    assert (hook["sideEffects"], hook["reinvocationPolicy"], hook["matchPolicy"]) == ("None", "IfNeeded", "Equivalent")
    assert hook["timeoutSeconds"] == 10
    assert hook["failurePolicy"] == EXPECTED[render]["failure_policy"]
    # It calls the chart's Service, whose port 443 reaches the container's https port.
    service = one(objs, "Service", FULLNAME)
    assert hook["clientConfig"]["service"] == {"name": FULLNAME, "namespace": NAMESPACE, "path": "/mutate", "port": 443}
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]


@pytest.mark.parametrize("render", RENDERS)
def test_services_reach_the_webhook_pods_only(chart_rendered: Rendered, render: str) -> None:
    objs = chart_rendered[render]
    labels = deployment(objs)["spec"]["template"]["metadata"]["labels"]
    audit_labels = {**labels, COMPONENT: "audit"}
    _, metrics_port = EXPECTED[render]["ports"]
    webhook_service = one(objs, "Service", FULLNAME)
    metrics = one(objs, "Service", f"{FULLNAME}-metrics")
    assert metrics["spec"]["ports"] == [
        {"name": "metrics", "port": metrics_port, "targetPort": "metrics", "protocol": "TCP"}
    ]
    for service in (webhook_service, metrics):
        assert selects({"matchLabels": service["spec"]["selector"]}, labels)
        assert not selects({"matchLabels": service["spec"]["selector"]}, audit_labels)
        assert not selects({"matchLabels": service["spec"]["selector"]}, {**labels, "app.kubernetes.io/instance": "x"})
    if EXPECTED[render]["audit"]:
        assert audit_pod_labels(objs) == audit_labels
    if EXPECTED[render]["monitor"]:
        monitor = one(objs, "ServiceMonitor")
        assert selects(monitor["spec"]["selector"], metrics["metadata"]["labels"])
        assert not selects(monitor["spec"]["selector"], webhook_service["metadata"]["labels"])
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        assert [(e["port"], e["path"], e["scheme"]) for e in monitor["spec"]["endpoints"]] == [
            ("metrics", "/metrics", "http")
        ]


# --- the serving certificate, three ways ---------------------------------------------------------


def mounted_secret(objs: list[Obj]) -> str:
    volumes = deployment(objs)["spec"]["template"]["spec"]["volumes"]
    (tls,) = [v for v in volumes if v["name"] == "tls"]
    assert tls["secret"]["defaultMode"] == 0o440
    name: str = tls["secret"]["secretName"]
    return name


@pytest.mark.parametrize("render", CERT_MANAGER_RENDERS)
def test_cert_manager_wiring(chart_rendered: Rendered, render: str) -> None:
    objs = chart_rendered[render]
    config = one(objs, "MutatingWebhookConfiguration")
    assert "caBundle" not in webhook(objs)["clientConfig"]  # cainjector owns it
    serving = one(objs, "Certificate", f"{FULLNAME}-serving-cert")
    annotation = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == f"{NAMESPACE}/{serving['metadata']['name']}"
    assert serving["spec"]["dnsNames"] == [HOST, f"{HOST}.cluster.local"]
    assert serving["spec"]["secretName"] == mounted_secret(objs)
    assert serving["spec"]["privateKey"]["rotationPolicy"] == "Always"
    if EXPECTED[render]["issuer"] == "existing":
        assert serving["spec"]["issuerRef"] == {"kind": "ClusterIssuer", "name": "private-ca"}
        assert [o for o in objs if o["kind"] == "Issuer"] == []
        return
    # A CA Issuer whose CA is a separate, long-lived Certificate: renewals never change the caBundle.
    ca_issuer = one(objs, "Issuer", serving["spec"]["issuerRef"]["name"])
    ca_cert = one(objs, "Certificate", f"{FULLNAME}-ca")
    assert ca_cert["spec"]["isCA"] is True
    assert ca_issuer["spec"]["ca"]["secretName"] == ca_cert["spec"]["secretName"]
    assert one(objs, "Issuer", ca_cert["spec"]["issuerRef"]["name"])["spec"] == {"selfSigned": {}}
    assert parse_duration(ca_cert["spec"]["duration"]) > parse_duration(serving["spec"]["duration"])


def test_self_managed_certificate(chart_rendered: Rendered, helm: Path) -> None:
    """pki.certManager.enabled false and no certificate given: the webhook keeps its own (self-managed).
    Nothing random or read from the cluster is rendered (two renders are the same bytes, no Secret, no
    caBundle); the pair is written into an in-memory emptyDir; the args name the chart's Secret,
    webhook configuration and Service, as serve reads them."""
    objs = chart_rendered["helm-self-managed-certificate"]
    values = "self-managed-certificate"
    assert chart.template(helm, values) == chart.template(helm, values)
    assert [o for o in objs if o["kind"] == "Secret"] == []
    assert "caBundle" not in webhook(objs)["clientConfig"]
    assert "annotations" not in one(objs, "MutatingWebhookConfiguration")["metadata"]
    volumes = deployment(objs)["spec"]["template"]["spec"]["volumes"]
    (tls,) = [v for v in volumes if v["name"] == "tls"]
    assert tls == {"name": "tls", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
    config = serve_config_of(container(objs), NAMESPACE)
    managed = config.self_managed_tls
    assert (managed.namespace, managed.secret, managed.webhook_configuration) == (NAMESPACE, SECRET, FULLNAME)
    assert managed.hosts == (HOST, f"{HOST}.cluster.local")
    assert (managed.lifetime, managed.renew_before) == (parse_duration("4380h"), parse_duration("1460h"))
    assert (config.tls_cert, config.tls_key) == ("/etc/webhook/certs/tls.crt", "/etc/webhook/certs/tls.key")
    # The community chart's keys alone (certManager off) give the same mode with the chart's defaults,
    # and the former generated mode's pki.generated.days still sets the lifetime.
    plain = documents(chart.template(helm, None, "--set", "pki.certManager.enabled=false"))
    assert serve_config_of(container(plain), NAMESPACE).self_managed_tls.lifetime == parse_duration("2160h")
    days = documents(
        chart.template(helm, None, "--set", "pki.certManager.enabled=false", "--set", "pki.generated.days=30")
    )
    managed = serve_config_of(container(days), NAMESPACE).self_managed_tls
    assert (managed.lifetime, managed.renew_before) == (30 * 86400, 10 * 86400)  # renewed a third early


@pytest.fixture(scope="module")
def own_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a serving certificate for irsa-webhook.irsa-webhook.svc from `irsa-webhook certs`."""
    out = tmp_path_factory.mktemp("own-certs")
    cli_certs(out)
    return out


@pytest.mark.parametrize("with_ca", [True, False], ids=["caBundle", "self-signed-cert"])
def test_provided_certificate_and_key(helm: Path, own_certs: Path, with_ca: bool) -> None:
    """pki.cert and pki.key (community keys): stored in the chart's Secret; the caBundle is pki.caBundle,
    or the certificate itself when none is given (a self-signed certificate is its own CA)."""
    args = ["--set", "pki.certManager.enabled=false"]
    args += ["--set-file", f"pki.cert={own_certs / 'tls.crt'}", "--set-file", f"pki.key={own_certs / 'tls.key'}"]
    args += ["--set-file", f"pki.caBundle={own_certs / 'ca.crt'}"] if with_ca else []
    objs = documents(chart.template(helm, None, *args))
    secret = one(objs, "Secret", f"{FULLNAME}-tls")
    assert b64(secret["data"]["tls.crt"]) == (own_certs / "tls.crt").read_bytes()
    assert b64(secret["data"]["tls.key"]) == (own_certs / "tls.key").read_bytes()
    expected_ca = (own_certs / ("ca.crt" if with_ca else "tls.crt")).read_bytes()
    assert b64(webhook(objs)["clientConfig"]["caBundle"]) == expected_ca
    assert b64(secret["data"]["ca.crt"]) == expected_ca
    if with_ca:
        chart.verify_serving_pair(expected_ca, b64(secret["data"]["tls.crt"]), b64(secret["data"]["tls.key"]), HOST)


def test_existing_secret(chart_rendered: Rendered, helm: Path, own_certs: Path) -> None:
    """pki.existingSecret: mounted as it is, never rendered; the caBundle is pki.caBundle, which it
    needs (test_conflicting_certificate_values_stop_the_install)."""
    objs = chart_rendered["helm-existing-secret"]
    assert mounted_secret(objs) == "irsa-webhook-byo-tls"
    assert [o for o in objs if o["kind"] == "Secret"] == []
    example = yaml.safe_load((chart.CI_VALUES / "existing-secret.yaml").read_text())["pki"]["caBundle"]
    assert b64(webhook(objs)["clientConfig"]["caBundle"]).decode() == example
    with_ca = documents(chart.template(helm, "existing-secret", "--set-file", f"pki.caBundle={own_certs / 'ca.crt'}"))
    assert b64(webhook(with_ca)["clientConfig"]["caBundle"]) == (own_certs / "ca.crt").read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--set", "pki.existingSecret=mine"], "set pki.certManager.enabled=false", id="cert-manager+secret"
        ),
        pytest.param(["--set", "pki.key=x"], "set pki.certManager.enabled=false", id="cert-manager+key"),
        pytest.param(
            ["--set", "pki.certManager.enabled=false", "--set", "pki.existingSecret=mine", "--set", "pki.cert=x"],
            "two different certificates",
            id="secret+cert",
        ),
        pytest.param(
            ["--set", "pki.certManager.enabled=false", "--set", "pki.cert=x"], "go together", id="cert-without-key"
        ),
        # Before, the caBundle was read from the Secret with `lookup`: nothing under helm template (GitOps),
        # so the webhook configuration trusted nothing and, failing closed, blocked every pod.
        pytest.param(
            ["--set", "pki.certManager.enabled=false", "--set", "pki.existingSecret=mine"],
            "pki.existingSecret needs pki.caBundle",
            id="secret-without-ca-bundle",
        ),
    ],
)
def test_conflicting_certificate_values_stop_the_install(helm: Path, args: list[str], message: str) -> None:
    result = chart.run(helm, "template", chart.RELEASE, str(chart.CHART), *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr


# --- the values: the community chart's keys and the schema ----------------------------------------

# Every key of the community chart's values (its latest values.yaml), at its default. A values file
# written for that chart is a subset of this with other values: all of it must validate here.
COMMUNITY_DEFAULTS: Obj = {
    "nameOverride": "",
    "namespaceOverride": "",
    "fullnameOverride": "",
    "replicaCount": 1,
    "strategy": {},
    "podDisruptionBudget": {"enabled": False, "minAvailable": None, "maxUnavailable": None},
    "priorityClassName": "",
    "image": {
        "pullPolicy": "IfNotPresent",
        "registry": "public.ecr.aws",
        "repository": "eks/amazon-eks-pod-identity-webhook",
        "tag": "",
    },
    "imagePullSecrets": [],
    "config": {
        "annotationPrefix": "eks.amazonaws.com",
        "defaultAwsRegion": "us-east-1",
        "extraArgs": [],
        "ports": {"metrics": 9999, "webhook": 8443},
        "stsRegionalEndpoint": True,
        "tokenAudience": "sts.amazonaws.com",
        "tokenExpiration": 86400,
        "tokenMountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount",
        "podIdentityWebhookMap": {"enabled": False, "name": "pod-identity-webhook", "data": {}},
    },
    "mutatingWebhook": {
        "annotations": {},
        "failurePolicy": "Ignore",
        "namespaceSelector": {},
        "objectSelector": {"matchExpressions": [], "matchLabels": {}},
    },
    "pki": {
        "certManager": {
            "enabled": True,
            "certificate": {"duration": "2160h", "renewBefore": "360h"},
            "existingIssuer": {"enabled": False, "kind": "ClusterIssuer", "name": "selfsigned"},
        },
        "caBundle": "",
        "cert": "",
        "key": "",
        "existingSecret": "",
    },
    "metrics": {
        "serviceMonitor": {
            "enabled": False,
            "namespace": "",
            "additionalLabels": {},
            "interval": "30s",
            "scrapeTimeout": "",
            "honorLabels": False,
            "relabelings": [],
            "endpointAdditionalProperties": {},
        }
    },
    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"}},
    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"}},
    "annotations": {},
    "hostNetwork": False,
    "resources": {"limits": {}, "requests": {}},
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsGroup": 1,
        "runAsNonRoot": False,
        "runAsUser": 65534,
        "capabilities": {"drop": ["ALL"]},
    },
    "podSecurityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
    "service": {"type": "ClusterIP", "annotations": {}, "labels": {}},
    "serviceAccount": {"create": True, "name": "", "annotations": {}},
    "podLabels": {},
    "podAnnotations": {},
    "affinity": {},
    "nodeSelector": {},
    "tolerations": [],
}
# The keys the issue lists as meaning the same here; each one is exercised by ci/community-values.yaml.
SAME_MEANING = [
    "replicaCount",
    "image",
    "config.annotationPrefix",
    "config.defaultAwsRegion",
    "config.stsRegionalEndpoint",
    "config.tokenAudience",
    "config.tokenExpiration",
    "config.tokenMountPath",
    "config.extraArgs",
    "config.podIdentityWebhookMap",
    "mutatingWebhook",
    "pki",
    "metrics.serviceMonitor",
    "hostNetwork",
    "resources",
    "podDisruptionBudget",
    "priorityClassName",
    "nodeSelector",
    "tolerations",
    "affinity",
    "podLabels",
    "podAnnotations",
]


def dig(values: Obj, dotted: str) -> Any:
    for part in dotted.split("."):
        values = values[part]
    return values


def test_the_community_charts_whole_values_validate(helm: Path, tmp_path: Path) -> None:
    """Every key the community chart has, at its default, is accepted by values.schema.json and renders
    (its own image aside: the file points at upstream's, which is the one key a user must change)."""
    values = tmp_path / "community-defaults.yaml"
    values.write_text(yaml.safe_dump(COMMUNITY_DEFAULTS))
    objs = documents(chart.template(helm, None, "-f", str(values)))
    box = container(objs)
    assert box["image"] == "public.ecr.aws/eks/amazon-eks-pod-identity-webhook:0.1.0"  # image.registry honoured
    assert deployment(objs)["spec"]["replicas"] == 1
    assert [o for o in objs if o["kind"] == "PodDisruptionBudget"] == []  # its default: off
    assert "priorityClassName" not in deployment(objs)["spec"]["template"]["spec"]  # "" means none
    config = serve_config_of(box, NAMESPACE).settings
    assert (config.aws_default_region, config.sts_regional_endpoint) == ("us-east-1", True)
    # resources.requests {} merges into the chart's own: the webhook keeps a memory limit.
    assert box["resources"]["limits"] == {"memory": "256Mi"}
    # Its budget switched on, with both bounds null as the community chart has them: one pod stays up.
    on = ["--set", "podDisruptionBudget.enabled=true", "--set", "replicaCount=2"]
    budget = one(documents(chart.template(helm, None, "-f", str(values), *on)), "PodDisruptionBudget")
    assert budget["spec"] == {"minAvailable": 1, "selector": budget["spec"]["selector"]}
    on += ["--set", "podDisruptionBudget.maxUnavailable=1"]
    budget = one(documents(chart.template(helm, None, "-f", str(values), *on)), "PodDisruptionBudget")
    assert "minAvailable" not in budget["spec"]
    assert budget["spec"]["maxUnavailable"] == 1


def test_the_community_example_uses_the_keys_that_mean_the_same() -> None:
    example = yaml.safe_load((chart.CI_VALUES / "community-values.yaml").read_text())
    for dotted in SAME_MEANING:
        if dotted != "image":  # the example keeps the chart's image: see docs/migrate.md
            dig(example, dotted)
        dig(COMMUNITY_DEFAULTS, dotted)


@pytest.mark.parametrize(
    ("args", "where"),
    [
        pytest.param(["--set", "replicas=2"], "additional properties 'replicas'", id="unknown-top-level-key"),
        pytest.param(["--set", "config.tokenExpirationSeconds=1"], "tokenExpirationSeconds", id="unknown-nested-key"),
        pytest.param(["--set", "mutatingWebhook.failurePolicy=Maybe"], "failurePolicy", id="bad-enum"),
        pytest.param(["--set", "config.podIdentityWebhookMap.name=other"], "name", id="configmap-name-fixed"),
        pytest.param(["--set", "config.roleSessionName=sa"], "roleSessionName", id="session-name-values"),
        pytest.param(["--set", "service.type=LoadBalancer"], "type", id="service-type"),
    ],
)
def test_schema_refuses_typos_and_bad_values(helm: Path, args: list[str], where: str) -> None:
    result = chart.run(helm, "template", chart.RELEASE, str(chart.CHART), *args, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert where in result.stderr


# --- the modes -------------------------------------------------------------------------------------


def test_configmap_mode_map_is_read_by_the_webhooks_parser(chart_rendered: Rendered) -> None:
    for render in (r for r in RENDERS if EXPECTED[r]["config_map"]):
        objs = chart_rendered[render]
        config_map = one(objs, "ConfigMap", CONFIG_MAP_NAME)
        settings = serve_config_of(container(objs), NAMESPACE).settings
        role_map, problems, _entries = parse_config(config_map["data"]["config"], settings)
        assert role_map is not None, render
        assert problems == [], render


def test_configmap_mode_map_that_renders_to_no_yaml_stops_the_render(helm: Path, tmp_path: Path) -> None:
    """A template in config.podIdentityWebhookMap.data that breaks the YAML: helm's fromYaml turns that
    into {"Error": ...} instead of failing, which installed would drop every role of the map. The
    render stops with the reason instead."""
    values = tmp_path / "map.yaml"
    # An unquoted value whose template renders a line break: the next line is no longer a key.
    role_arn = 'arn{{ "\\n" }}- y'
    data = {"team-a/app": {"RoleARN": role_arn}, "team-b/app": {"RoleARN": "arn:aws:iam::111122223333:role/b"}}
    values.write_text(yaml.safe_dump({"config": {"podIdentityWebhookMap": {"enabled": True, "data": data}}}))
    result = chart.run(helm, "template", chart.RELEASE, str(chart.CHART), "-f", str(values), check=False)
    assert result.returncode != 0, result.stdout
    assert "config.podIdentityWebhookMap.data is not valid YAML once its templates are rendered" in result.stderr
    assert "error converting YAML to JSON" in result.stderr  # the parser's own reason, passed on


def test_configmap_mode_map_with_a_key_named_error_still_renders(helm: Path, tmp_path: Path) -> None:
    """The guard looks for fromYaml's failure, not for any key called Error (the webhook itself skips
    such a key, which has no namespace, and uses the rest)."""
    values = tmp_path / "map.yaml"
    data = {"Error": {"RoleARN": "x"}, "team-a/app": {"RoleARN": "arn:aws:iam::111122223333:role/a"}}
    values.write_text(yaml.safe_dump({"config": {"podIdentityWebhookMap": {"enabled": True, "data": data}}}))
    config_map = one(documents(chart.template(helm, None, "-f", str(values))), "ConfigMap", CONFIG_MAP_NAME)
    assert json.loads(config_map["data"]["config"]) == data


def test_eks_pod_identity_file(chart_rendered: Rendered) -> None:
    """config.eksPodIdentity: the identities file rendered into a ConfigMap, mounted as a directory,
    read by the webhook's own parser, and named by --watch-container-credentials-config."""
    objs = chart_rendered["helm-modes"]
    config = serve_config_of(container(objs), NAMESPACE)
    path = Path(config.container_credentials_config)
    mounts = {m["name"]: m for m in container(objs)["volumeMounts"]}
    assert mounts["pod-identity"]["mountPath"] == str(path.parent)
    volumes = {v["name"]: v for v in deployment(objs)["spec"]["template"]["spec"]["volumes"]}
    config_map = one(objs, "ConfigMap", volumes["pod-identity"]["configMap"]["name"])
    assert parse_identities(config_map["data"][path.name].encode()) == {("shop", "cart"), ("shop", "checkout")}
    settings = config.settings
    assert (settings.role_arn_account, settings.role_arn_partition) == ("111122223333", "aws")  # composeRoleArn
    assert settings.role_session_name is True  # roleSessionName: pod
    assert config.compose_from_imds is False  # the account is given: no IMDS call


def test_pod_identity_from_an_existing_configmap(helm: Path) -> None:
    objs = documents(chart.template(helm, "modes", "--set", "config.eksPodIdentity.existingConfigMap=associations"))
    volumes = {v["name"]: v for v in deployment(objs)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["pod-identity"]["configMap"]["name"] == "associations"
    assert [o for o in objs if o["kind"] == "ConfigMap"] == []


def audit_args(helm: Path, *args: str) -> tuple[list[Obj], Any, Obj]:
    """The audit CronJob of ci/modes.yaml (with ARGS), its container's args read by `irsa-webhook
    audit`'s own parser (as the kubelet would start it in NAMESPACE), and its container."""
    import argparse

    from webhook.commands import audit, serve
    from webhook.options.config import serve_config
    from webhook.options.flags import resolve

    objs = documents(chart.template(helm, "modes", *args))
    job = one(objs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (box,) = job["containers"]
    parser = argparse.ArgumentParser()
    audit.register(parser.add_subparsers())
    parsed = parser.parse_args(box["command"][1:] + box["args"])
    environ = {"IRSA_WEBHOOK_NAMESPACE": NAMESPACE}
    assert box["env"] == [
        {"name": "IRSA_WEBHOOK_CONFIGURATION", "value": FULLNAME},  # the release's own configuration
        {"name": "IRSA_WEBHOOK_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    assert one(objs, "MutatingWebhookConfiguration")["metadata"]["name"] == FULLNAME
    values = {flag.dest: flag.default for flag in serve.FLAGS} | resolve(parsed, parsed.flags, environ)
    return objs, (parsed, serve_config(values)), box


def test_audit_cronjob(helm: Path) -> None:
    """audit.enabled: `irsa-webhook audit` with the webhook's own mutation and source flags, its own
    read-only ClusterRole (plus evictions with evict), restricted like the webhook."""
    objs, (parsed, config), box = audit_args(helm)
    assert box["command"] == ["irsa-webhook", "audit"]
    assert parsed.func.__module__ == "webhook.commands.audit"
    assert (parsed.output, parsed.evict) == ("json", True)
    webhook_config = serve_config_of(container(objs), NAMESPACE)
    assert config.settings == webhook_config.settings  # judged by the webhook's own rules
    assert config.container_credentials_config == webhook_config.container_credentials_config
    assert config.namespace == NAMESPACE  # where ConfigMap mode's map is read
    # Exactly the webhook's argument list, then the audit's own flags.
    webhook_args = container(objs)["args"]
    assert box["args"][: len(webhook_args)] == webhook_args
    assert box["args"][len(webhook_args) :] == ["--output=json", "--evict"]
    job = one(objs, "CronJob")
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"] == {k: v for k, v in POD_SECURITY_CONTEXT.items() if k != "fsGroup"}
    assert box["securityContext"] == CONTAINER_SECURITY_CONTEXT
    assert pod["restartPolicy"] == "Never"
    assert {m["mountPath"] for m in box["volumeMounts"]} == {str(Path(config.container_credentials_config).parent)}
    assert checkov_skips(job) == {"CKV_K8S_15", "CKV_K8S_38", "CKV_K8S_43"}
    # Its own identity and RBAC: nothing of the webhook's.
    account = pod["serviceAccountName"]
    assert account != deployment(objs)["spec"]["template"]["spec"]["serviceAccountName"]
    role = one(objs, "ClusterRole", f"{FULLNAME}-audit")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods", "serviceaccounts"], "verbs": ["get", "list"]},
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["mutatingwebhookconfigurations"],
            "resourceNames": [FULLNAME],
            "verbs": ["get"],
        },
    ]
    evict = one(objs, "ClusterRole", f"{FULLNAME}-audit-evict")
    assert evict["rules"] == [{"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}]
    for granted in (role, evict):
        binding = one(objs, "ClusterRoleBinding", granted["metadata"]["name"])
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]
        assert binding["roleRef"]["name"] == granted["metadata"]["name"]


def test_the_audit_gets_config_extra_args_as_the_webhook_does(helm: Path) -> None:
    """config.extraArgs reach the audit too: with --compose-role-arn a role-name annotation must not
    look like drift to the audit (issue: extraArgs reached serve only)."""
    extra = ["--compose-role-arn", "--aws-account-id=123456789012"]
    objs, (_parsed, config), box = audit_args(helm, "--set-json", f"config.extraArgs={json.dumps(extra)}")
    webhook_config = serve_config_of(container(objs), NAMESPACE)
    assert config.settings == webhook_config.settings
    assert config.settings.role_arn_account == "123456789012"
    assert set(extra) <= set(box["args"])


def test_audit_without_evict_is_read_only_and_follows_the_webhooks_scope(helm: Path) -> None:
    objs, (parsed, config), _box = audit_args(
        helm,
        "--set",
        "audit.evict=false",
        "--set",
        "audit.output=table",
        "--set",
        "config.podIdentityWebhookMap.enabled=true",
        "--set",
        "mutatingWebhook.failurePolicy=Fail",
        "-f",
        str(chart.CI_VALUES / "community-values.yaml"),
        "--set",
        "audit.enabled=true",
    )
    assert parsed.evict is False
    assert parsed.output == "table"  # audit.output table renders no flag: the audit's own default
    rules = one(objs, "ClusterRole", f"{FULLNAME}-audit")["rules"]
    assert all(set(rule["verbs"]) <= {"get", "list"} for rule in rules)
    assert [o for o in objs if o["metadata"]["name"] == f"{FULLNAME}-audit-evict"] == []
    assert config.watch_config_map is True
    # Which namespaces and pods are the webhook's, the audit reads from the configuration itself.
    assert parsed.exclude_namespace == []
    assert parsed.pods_namespace == []
    role = one(objs, "Role", f"{FULLNAME}-audit-configmap")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CONFIG_MAP_NAME], "verbs": ["get"]}
    ]


def test_audit_is_the_kustomize_audit_components(helm: Path, rendered: Rendered) -> None:
    """audit.enabled + audit.evict render what the default overlay plus the `audit` and `audit-evict`
    components render: the same RBAC, ServiceAccount and CronJob (schedule, deadlines, history, args,
    security context, resources), under the same names."""
    values = ["--set", "audit.enabled=true", "--set", "audit.evict=true"]
    objs = documents(chart.template(helm, None, *values))
    # The ConfigMap's Role only where ConfigMap mode is on (the component always has it).
    with_map = documents(chart.template(helm, None, *values, "--set", "config.podIdentityWebhookMap.enabled=true"))
    kustomize = rendered["default+audit-evict"]
    audit_kinds = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "CronJob"}
    expected = [o for o in kustomize if o["kind"] in audit_kinds and o["metadata"]["name"].startswith(f"{FULLNAME}-")]
    assert len(expected) == 8  # ServiceAccount, CronJob, 2 ClusterRoles + bindings, Role + binding
    for shipped in expected:
        source = with_map if shipped["kind"] in {"Role", "RoleBinding"} else objs
        got = copy.deepcopy(one(source, shipped["kind"], shipped["metadata"]["name"]))
        want = copy.deepcopy(shipped)
        if want["kind"] == "CronJob":
            assert checkov_skips(got) == checkov_skips(want)
            for job in (got, want):
                # Labels differ on purpose (see templates/audit.yaml); what they select is tested above.
                job["spec"]["jobTemplate"]["spec"]["template"].pop("metadata")
                job["spec"]["jobTemplate"].pop("metadata", None)
        assert comparable(got) == comparable(want), want["kind"]
    assert [o for o in objs if o["kind"] in {"Role", "RoleBinding"}] == []


def test_host_network(chart_rendered: Rendered) -> None:
    objs = chart_rendered["helm-host-network"]
    pod = deployment(objs)["spec"]["template"]["spec"]
    assert (pod["hostNetwork"], pod["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
    # Ports no node component uses, and the Service still answers on 443.
    assert one(objs, "Service", FULLNAME)["spec"]["ports"][0]["port"] == 443


@pytest.mark.parametrize("render", RENDERS)
def test_every_checkov_skip_names_a_check_and_a_reason(chart_rendered: Rendered, render: str) -> None:
    skips = [
        value
        for obj in chart_rendered[render]
        for key, value in obj["metadata"].get("annotations", {}).items()
        if key.startswith("checkov.io/skip")
    ]
    assert skips
    for value in skips:
        check, _, reason = value.partition("=")
        assert check.startswith(("CKV_K8S_", "CKV2_K8S_")), value
        assert len(reason.split()) >= 5, f"{check} needs a reason"


def test_the_migration_guide_shows_the_installed_community_example() -> None:
    """docs/migrate.md's "values file that works unchanged" is ci/community-values.yaml, which the e2e
    suite installs as it is: the guide cannot drift from what is tested."""
    guide = (REPO / "docs" / "migrate.md").read_text()
    section = guide.split("### A values file that works unchanged\n", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```\n", 1)[0]
    example = (chart.CI_VALUES / "community-values.yaml").read_text()
    assert yaml.safe_load(block) == yaml.safe_load(example)
    assert block.strip() in example  # comments included: the guide shows the file itself
