"""The provisioner's deployable shape: the kustomize component `provisioner` (the IRSAIssuer CRD,
`irsa-webhook controller` and its RBAC) and the chart's `provisioner.*` values, which render the same.

The component is rendered on top of the default overlay as a user adds it (render.COMPONENT_RENDERS,
``default+provisioner``), the chart with ci/provisioner.yaml and with --set; checkov scans both
(test_deploy_scan.py). What kube-apiserver itself makes of the CRD (defaults, CEL rules, printer
columns) and of the RBAC (SubjectAccessReview) is tests/e2e/test_e2e_provisioner_crd.py and
test_e2e_provisioner_manifests.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import REPO

from . import helm as chart
from .objects import NAMESPACE, Obj, Rendered, container_of, one, selects
from .provisioner import (
    CLUSTER,
    COMPONENT,
    NAME,
    RENDER,
    chart_render,
    checkov_skips,
    comparable,
    controller,
    overlay,
    provisioner_objects,
)
from .render import documents, kustomize

CRD = "irsaissuers.irsa-webhook.io"

# The ClusterRole, written out: exactly these verbs on exactly these resources, nothing else.
CLUSTER_RULES = [
    {"apiGroups": ["irsa-webhook.io"], "resources": ["irsaissuers"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["irsa-webhook.io"], "resources": ["irsaissuers/status"], "verbs": ["update", "patch"]},
    {"apiGroups": ["irsa-webhook.io"], "resources": ["irsaissuers/finalizers"], "verbs": ["update"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"nonResourceURLs": ["/openid/v1/jwks", "/.well-known/openid-configuration"], "verbs": ["get"]},
]


def namespaced_rules(name: str) -> list[Obj]:
    """The Role in its own namespace: its Lease by name (create cannot be named), its own token."""
    return [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [name],
            "verbs": ["get", "update"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "resourceNames": [name], "verbs": ["create"]},
    ]


# The controller's flags (fixed by the lead), as the Deployment starts it; then the chart's extraArgs.
ARGS = [
    "--cluster-name=$(CLUSTER_NAME)",
    "--resync=1h",
    "--leader-elect",
    f"--leader-election-name={NAME}",
    "--health-port=8081",
    "--metrics-port=9090",
]
ENV = [
    {"name": "CLUSTER_NAME", "valueFrom": {"configMapKeyRef": {"name": NAME, "key": "cluster-name"}}},
    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    {"name": "SERVICE_ACCOUNT_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
]


def webhook_calls(objs: list[Obj], namespace: str, pod_labels: dict[str, str]) -> bool:
    """Whether the render's MutatingWebhookConfiguration is called for a pod with POD_LABELS in NAMESPACE."""
    (hook,) = one(objs, "MutatingWebhookConfiguration")["webhooks"]
    namespace_ok = selects(hook["namespaceSelector"], {"kubernetes.io/metadata.name": namespace})
    return namespace_ok and selects(hook["objectSelector"], pod_labels)


# --- the kustomize component ----------------------------------------------------------------------


def test_the_webhook_itself_is_the_default_overlay(rendered: Rendered) -> None:
    objs = rendered[RENDER]
    added = provisioner_objects(objs)
    assert [o for o in objs if o not in added] == rendered["default"]
    assert {(o["kind"], o["metadata"]["name"]) for o in added} == {
        ("CustomResourceDefinition", CRD),
        ("Namespace", NAME),
        ("ServiceAccount", NAME),
        ("ClusterRole", NAME),
        ("ClusterRoleBinding", NAME),
        ("Role", NAME),
        ("RoleBinding", NAME),
        ("Deployment", NAME),
        ("Service", f"{NAME}-metrics"),
    }
    for obj in added:
        if obj["kind"] not in {"CustomResourceDefinition", "Namespace", "ClusterRole", "ClusterRoleBinding"}:
            assert obj["metadata"]["namespace"] == NAME, obj["metadata"]


def test_the_crd_is_its_own_file() -> None:
    """The roles issue adds its two CRDs next to this one, each in its own file."""
    (crd,) = documents((COMPONENT / "crd-irsaissuers.yaml").read_text())
    assert crd["metadata"]["name"] == CRD
    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert "crd-irsaissuers.yaml" in kustomization["resources"]


def test_the_crd(rendered: Rendered) -> None:
    crd = one(rendered[RENDER], "CustomResourceDefinition", CRD)
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("irsa-webhook.io", "Cluster")
    assert spec["names"] == {
        "kind": "IRSAIssuer",
        "listKind": "IRSAIssuerList",
        "plural": "irsaissuers",
        "singular": "irsaissuer",
        "categories": ["irsa-webhook"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"] if c.get("priority", 0) == 0}
    assert columns == {
        "Issuer": ".status.issuerURL",
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Age": ".metadata.creationTimestamp",
    }
    schema = version["schema"]["openAPIV3Schema"]
    fields = schema["properties"]["spec"]["properties"]
    # The defaults the design fixes; kube-apiserver filling them in is the e2e test's.
    assert fields["keys"]["properties"]["source"]["default"] == "APIServer"
    assert fields["keys"]["properties"]["source"]["enum"] == ["APIServer", "Static"]
    assert fields["oidcProvider"]["properties"]["clientIDs"]["default"] == ["sts.amazonaws.com"]
    assert fields["deletionPolicy"]["enum"] == ["Retain", "Delete"]
    assert fields["deletionPolicy"]["default"] == "Retain"
    assert fields["discovery"]["properties"]["s3"]["properties"]["createBucket"]["default"] is False
    status = schema["properties"]["status"]["properties"]
    assert set(status) == {
        "observedGeneration",
        "issuerURL",
        "providerARN",
        "publishedKeys",
        "signingKey",
        "conditions",
    }
    condition = status["conditions"]["items"]
    assert condition["required"] == ["type", "status", "lastTransitionTime", "reason", "message"]
    assert condition["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_the_cluster_role_grants_exactly_what_the_controller_does(rendered: Rendered) -> None:
    objs = rendered[RENDER]
    assert one(objs, "ClusterRole", NAME)["rules"] == CLUSTER_RULES
    assert one(objs, "Role", NAME)["rules"] == namespaced_rules(NAME)
    subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": NAME}]
    for kind, role_kind in [("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")]:
        binding = one(objs, kind, NAME)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": NAME}
        assert binding["subjects"] == subject
    # Never more than that: no Secrets, no wildcard, no delete anywhere, no write to any spec.
    granted = one(objs, "ClusterRole", NAME)["rules"] + one(objs, "Role", NAME)["rules"]
    for rule in granted:
        assert "*" not in rule["verbs"], rule
        assert "*" not in rule.get("resources", []), rule
        assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
        assert "secrets" not in rule.get("resources", []), rule


def test_the_role_names_what_the_deployment_uses(rendered: Rendered) -> None:
    """The Lease it may renew is the one --leader-election-name names; the token it may request is its
    own ServiceAccount's, the default of --probe-service-account (SERVICE_ACCOUNT_NAME)."""
    objs = rendered[RENDER]
    pod = one(objs, "Deployment", NAME)["spec"]["template"]["spec"]
    rules = one(objs, "Role", NAME)["rules"]
    flags = dict(arg.removeprefix("--").partition("=")[::2] for arg in controller(objs)["args"])
    assert rules[0]["resourceNames"] == [flags["leader-election-name"]]
    assert rules[2]["resourceNames"] == [pod["serviceAccountName"]]
    assert one(objs, "ServiceAccount", pod["serviceAccountName"])["metadata"]["namespace"] == NAME


def test_the_controller_runs_its_own_image_hardened(rendered: Rendered) -> None:
    objs = rendered[RENDER]
    deployment = one(objs, "Deployment", NAME)
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    box = controller(objs)
    webhook_pod = one(objs, "Deployment", "irsa-webhook")["spec"]["template"]["spec"]
    # The webhook's image plus boto3 (`make image-provisioner`), of the same release.
    assert box["image"] == "irsa-webhook-provisioner:0.1.0"
    assert container_of(objs)["image"] == "irsa-webhook:0.1.0"
    assert box["imagePullPolicy"] == container_of(objs)["imagePullPolicy"] == "IfNotPresent"
    assert box["command"] == ["irsa-webhook", "controller"]
    assert box["args"] == ARGS
    assert box["env"] == ENV
    assert {p["name"]: p["containerPort"] for p in box["ports"]} == {"health": 8081, "metrics": 9090}
    assert box["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health", "scheme": "HTTP"}
    assert box["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health", "scheme": "HTTP"}
    assert pod["securityContext"] == webhook_pod["securityContext"]
    assert box["securityContext"] == container_of(objs)["securityContext"]
    assert set(box["resources"]["requests"]) == {"cpu", "memory"}
    assert set(box["resources"]["limits"]) == {"cpu", "memory"}  # off the admission path
    assert spec["replicas"] == 1
    # A rollout never waits for a standby's readiness, nor runs more controllers than asked.
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert selects(spec["selector"], spec["template"]["metadata"]["labels"])
    assert pod["automountServiceAccountToken"] is True
    assert "priorityClassName" not in pod  # not on anyone's admission path


def test_the_webhook_gives_the_controller_its_credentials(rendered: Rendered) -> None:
    """The controller runs on IRSA through this very webhook: its pods are in a namespace and carry
    labels the webhook's selectors let through. The webhook's own namespace would not be."""
    objs = rendered[RENDER]
    template = one(objs, "Deployment", NAME)["spec"]["template"]
    labels = template["metadata"]["labels"]
    namespace = one(objs, "Deployment", NAME)["metadata"]["namespace"]
    assert webhook_calls(objs, namespace, labels)
    assert not webhook_calls(objs, NAMESPACE, labels)
    # ... and the webhook's Services and PodDisruptionBudget never take it for a webhook replica.
    for service in (o for o in objs if o["kind"] == "Service" and o not in provisioner_objects(objs)):
        assert not selects({"matchLabels": service["spec"]["selector"]}, labels)
    assert not selects(one(objs, "PodDisruptionBudget")["spec"]["selector"], labels)
    assert one(objs, "Namespace", NAME)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_cluster_name_comes_from_the_users_overlay(kubectl: Path, copied: Path) -> None:
    """The configMapGenerator of kustomization.yaml's comment, as a user writes it: the hashed name
    reaches the Deployment, so a new cluster name rolls the controller."""
    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    comment = (COMPONENT / "kustomization.yaml").read_text()
    generator_text = comment.split("#       configMapGenerator:\n", 1)[1].split("#   - the IAM role", 1)[0]
    generator = yaml.safe_load("\n".join(line.removeprefix("#       ") for line in generator_text.splitlines()))
    folder = overlay(
        copied,
        "mine",
        {"resources": ["../default"], "components": ["../../components/provisioner"], "configMapGenerator": generator},
    )
    objs = documents(kustomize(kubectl, folder))
    (config_map,) = [o for o in objs if o["kind"] == "ConfigMap"]
    assert config_map["metadata"]["namespace"] == NAME
    assert config_map["data"] == {"cluster-name": CLUSTER}
    (cluster_name,) = [e for e in controller(objs)["env"] if e["name"] == "CLUSTER_NAME"]
    assert cluster_name["valueFrom"]["configMapKeyRef"] == {
        "name": config_map["metadata"]["name"],
        "key": "cluster-name",
    }


def test_an_overlay_namespace_cannot_move_the_controller_into_the_webhooks(kubectl: Path, copied: Path) -> None:
    """There the webhook would never give it credentials: kustomize stops instead (both Namespace
    objects would become one). The webhook alone can move, one overlay below the component."""
    folder = overlay(
        copied,
        "moved",
        {"namespace": "team-x", "resources": ["../default"], "components": ["../../components/provisioner"]},
    )
    with pytest.raises(RuntimeError, match="namespace transformation produces ID conflict"):
        kustomize(kubectl, folder)
    overlay(copied, "webhook-moved", {"namespace": "team-x", "resources": ["../default"]})
    folder = overlay(
        copied, "with-provisioner", {"resources": ["../webhook-moved"], "components": ["../../components/provisioner"]}
    )
    objs = documents(kustomize(kubectl, folder))
    assert one(objs, "Deployment", "irsa-webhook")["metadata"]["namespace"] == "team-x"
    assert one(objs, "Deployment", NAME)["metadata"]["namespace"] == NAME


# --- the chart ------------------------------------------------------------------------------------


def test_the_chart_renders_what_the_component_renders(rendered: Rendered, helm: Path) -> None:
    """provisioner.enabled with the defaults: the same CRD, RBAC, ServiceAccount, namespace,
    Deployment (args, env, probes, security context, resources, image) and metrics Service under the
    same names; plus the ConfigMap with the cluster's name, which kustomize users generate themselves."""
    chart_objs = provisioner_objects(chart_render(helm, "--set", f"provisioner.clusterName={CLUSTER}"))
    component = {(o["kind"], o["metadata"]["name"]): o for o in provisioner_objects(rendered[RENDER])}
    got = {(o["kind"], o["metadata"]["name"]): o for o in chart_objs}
    assert set(got) - set(component) == {("ConfigMap", NAME)}
    assert set(component) - set(got) == set()
    for key, want in component.items():
        assert comparable(got[key]) == comparable(want), key
        assert checkov_skips(got[key]) == checkov_skips(want), key
    assert got[("ConfigMap", NAME)]["data"] == {"cluster-name": CLUSTER}
    assert got[("ConfigMap", NAME)]["metadata"]["namespace"] == NAME
    # The namespace's labels that matter: the Pod Security level.
    want_labels, got_labels = (objs[("Namespace", NAME)]["metadata"]["labels"] for objs in (component, got))
    assert {k: v for k, v in got_labels.items() if k.startswith("pod-security")} == {
        k: v for k, v in want_labels.items() if k.startswith("pod-security")
    }


def test_the_chart_without_a_cluster_name_stops_with_the_reason(helm: Path) -> None:
    result = chart.run(
        helm, "template", chart.RELEASE, str(chart.CHART), "--set", "provisioner.enabled=true", check=False
    )
    assert result.returncode != 0
    assert "provisioner.clusterName is required with provisioner.enabled" in result.stderr
    # Off, the key is not needed and nothing of the provisioner is rendered.
    assert provisioner_objects(documents(chart.template(helm))) == []


def test_the_chart_refuses_the_webhooks_namespace(helm: Path) -> None:
    args = ["--set", "provisioner.enabled=true", "--set", f"provisioner.clusterName={CLUSTER}"]
    args += ["--set", f"provisioner.namespace={chart.NAMESPACE}"]
    result = chart.run(helm, "template", chart.RELEASE, str(chart.CHART), "-n", chart.NAMESPACE, *args, check=False)
    assert result.returncode != 0
    assert "is the webhook's namespace, whose pods the webhook never mutates" in result.stderr


@pytest.mark.parametrize(
    ("args", "where"),
    [
        pytest.param(["--set", "provisioner.clusterName=a/b"], "clusterName", id="cluster-name-with-slash"),
        pytest.param(["--set", "provisioner.resync=hourly"], "resync", id="resync-not-a-duration"),
        pytest.param(["--set", "provisioner.replica=2"], "replica", id="unknown-key"),
        pytest.param(["--set", "provisioner.namespace=Bad_Name"], "namespace", id="namespace-not-a-name"),
        pytest.param(["--set", "provisioner.image.pullPolicy=Sometimes"], "pullPolicy", id="pull-policy"),
        pytest.param(["--set", "provisioner.image.repository="], "repository", id="no-repository"),
        pytest.param(["--set", "provisioner.image.registry=x"], "registry", id="image-unknown-key"),
    ],
)
def test_the_schema_refuses_bad_provisioner_values(helm: Path, args: list[str], where: str) -> None:
    result = chart.run(helm, "template", chart.RELEASE, str(chart.CHART), *args, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert where in result.stderr


def test_the_documented_example(chart_rendered: Rendered) -> None:
    """ci/provisioner.yaml: the role annotation on the ServiceAccount, the extra flag appended, the
    webhook of the same release giving its pods credentials."""
    objs = chart_rendered["helm-provisioner"]
    account = one(objs, "ServiceAccount", NAME)
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/irsa-webhook-provisioner"
    }
    assert controller(objs)["args"] == [*ARGS, "--aws-calls-per-second=5"]
    assert one(objs, "ConfigMap", NAME)["data"] == {"cluster-name": CLUSTER}
    labels = one(objs, "Deployment", NAME)["spec"]["template"]["metadata"]["labels"]
    assert webhook_calls(objs, NAME, labels)
    assert not webhook_calls(objs, chart.NAMESPACE, labels)
    webhook_labels = one(objs, "Deployment", chart.RELEASE)["spec"]["template"]["metadata"]["labels"]
    assert not selects(one(objs, "Deployment", NAME)["spec"]["selector"], webhook_labels)
    for service in (o for o in objs if o["kind"] == "Service" and o not in provisioner_objects(objs)):
        assert not selects({"matchLabels": service["spec"]["selector"]}, labels)
    # Helm never deletes the CRD (and so every IRSAIssuer) on uninstall.
    crd = one(objs, "CustomResourceDefinition", CRD)
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_the_chart_follows_the_release_and_the_values(helm: Path) -> None:
    """Another release in another namespace: every name, the Lease and token it may use, the bindings'
    subjects follow; replicas, resync, resources and the namespace are the values'."""
    args = [
        *("--set", f"provisioner.clusterName={CLUSTER}", "--set", "provisioner.replicas=2"),
        *("--set", "provisioner.resync=30m", "--set", "provisioner.resources.limits.memory=512Mi"),
        *("--set", "provisioner.namespace=aws-issuer", "--set", "provisioner.createNamespace=false"),
        *("--set", "provisioner.installCRDs=false"),
    ]
    result = chart.run(
        helm, "template", "edge", str(chart.CHART), "-n", "platform", "--set", "provisioner.enabled=true", *args
    )
    objs = provisioner_objects(documents(result.stdout))
    name = "edge-irsa-webhook-provisioner"
    assert {o["kind"] for o in objs} == {
        "ConfigMap",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
    }
    for obj in objs:
        assert obj["metadata"]["name"] == (f"{name}-metrics" if obj["kind"] == "Service" else name)
        if obj["kind"] not in {"ClusterRole", "ClusterRoleBinding"}:
            assert obj["metadata"]["namespace"] == "aws-issuer"
    assert one(objs, "ClusterRole", name)["rules"] == CLUSTER_RULES
    assert one(objs, "Role", name)["rules"] == namespaced_rules(name)
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        assert one(objs, kind, name)["subjects"] == [
            {"kind": "ServiceAccount", "name": name, "namespace": "aws-issuer"}
        ]
    deployment = one(objs, "Deployment", name)
    assert deployment["spec"]["replicas"] == 2
    box = controller(objs, name)
    assert "--resync=30m" in box["args"]
    assert f"--leader-election-name={name}" in box["args"]
    assert box["env"][0]["valueFrom"]["configMapKeyRef"]["name"] == name
    assert box["resources"]["limits"]["memory"] == "512Mi"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == name


def test_the_crd_of_the_chart_can_be_kept_or_not(helm: Path) -> None:
    base = ["--set", f"provisioner.clusterName={CLUSTER}"]
    crd = one(chart_render(helm, *base, "--set", "provisioner.keepCRDs=false"), "CustomResourceDefinition", CRD)
    assert "annotations" not in crd["metadata"]


# --- the examples ---------------------------------------------------------------------------------

EXAMPLES = sorted((REPO / "examples" / "provisioner").glob("*.yaml"))


def test_the_examples_are_issuers() -> None:
    assert [p.name for p in EXAMPLES] == ["issuer-eks.yaml", "issuer-s3.yaml"]
    for path in EXAMPLES:
        (issuer,) = documents(path.read_text())
        assert (issuer["apiVersion"], issuer["kind"]) == ("irsa-webhook.io/v1alpha1", "IRSAIssuer")
    eks: Any = documents((REPO / "examples" / "provisioner" / "issuer-eks.yaml").read_text())[0]
    assert set(eks["spec"]) == {"issuerURL"}  # only the provider is ensured
