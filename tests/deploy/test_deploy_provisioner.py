"""The provisioner's deployable shape: the kustomize component `provisioner` (the IRSAIssuer, IRSARole
and ClusterIRSARole CRDs, `irsa-webhook controller` and its RBAC, the tenants' ClusterRole) and the
chart's `provisioner.*` values, which render the same.

The component is rendered on top of the default overlay as a user adds it (render.COMPONENT_RENDERS,
``default+provisioner``), the chart with ci/provisioner.yaml and with --set; checkov scans both
(test_deploy_scan.py). What kube-apiserver itself makes of the CRD (defaults, CEL rules, printer
columns) and of the RBAC (SubjectAccessReview) is tests/e2e/test_e2e_provisioner_crd.py,
test_e2e_provisioner_role_crds.py and test_e2e_provisioner_manifests.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from tests.support.paths import REPO
from webhook.provisioner.rolebindings import BindingState

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
ROLE_CRD = "irsaroles.irsa-webhook.io"
CLUSTER_ROLE_CRD = "clusterirsaroles.irsa-webhook.io"
CRDS = [CRD, ROLE_CRD, CLUSTER_ROLE_CRD]
TENANT = "irsa-webhook-tenant"
KINDS = ["irsaissuers", "irsaroles", "clusterirsaroles"]

# The ClusterRole, written out: exactly these verbs on exactly these resources, nothing else.
CLUSTER_RULES = [
    {"apiGroups": ["irsa-webhook.io"], "resources": KINDS, "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["irsa-webhook.io"], "resources": [f"{k}/status" for k in KINDS], "verbs": ["update", "patch"]},
    {"apiGroups": ["irsa-webhook.io"], "resources": [f"{k}/finalizers" for k in KINDS], "verbs": ["update"]},
    # In every namespace: the ServiceAccounts the roles bind (docs/deploy.md says what that means).
    {
        "apiGroups": [""],
        "resources": ["serviceaccounts"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"nonResourceURLs": ["/openid/v1/jwks", "/.well-known/openid-configuration"], "verbs": ["get"]},
]


# The tenants' ClusterRole: IRSARoles and their status, nothing else.
TENANT_RULES = [
    {
        "apiGroups": ["irsa-webhook.io"],
        "resources": ["irsaroles"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {"apiGroups": ["irsa-webhook.io"], "resources": ["irsaroles/status"], "verbs": ["get"]},
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
        *(("CustomResourceDefinition", crd) for crd in CRDS),
        ("Namespace", NAME),
        ("ServiceAccount", NAME),
        ("ClusterRole", NAME),
        ("ClusterRole", TENANT),
        ("ClusterRoleBinding", NAME),
        ("Role", NAME),
        ("RoleBinding", NAME),
        ("Deployment", NAME),
        ("Service", f"{NAME}-metrics"),
    }
    for obj in added:
        if obj["kind"] not in {"CustomResourceDefinition", "Namespace", "ClusterRole", "ClusterRoleBinding"}:
            assert obj["metadata"]["namespace"] == NAME, obj["metadata"]


@pytest.mark.parametrize("name", CRDS)
def test_each_crd_is_its_own_file(name: str) -> None:
    """crd-<plural>.yaml, which tests/support/crds.py applies to a control plane as it is."""
    file = f"crd-{name.partition('.')[0]}.yaml"
    (crd,) = documents((COMPONENT / file).read_text())
    assert crd["metadata"]["name"] == name
    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert file in kustomization["resources"]


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


def role_crd_version(objs: list[Obj], name: str) -> Obj:
    versions: list[Obj] = one(objs, "CustomResourceDefinition", name)["spec"]["versions"]
    (version,) = versions
    return version


@pytest.mark.parametrize(
    ("name", "kind", "scope"),
    [(ROLE_CRD, "IRSARole", "Namespaced"), (CLUSTER_ROLE_CRD, "ClusterIRSARole", "Cluster")],
)
def test_the_role_crds(rendered: Rendered, name: str, kind: str, scope: str) -> None:
    spec = one(rendered[RENDER], "CustomResourceDefinition", name)["spec"]
    plural = name.partition(".")[0]
    assert (spec["group"], spec["scope"]) == ("irsa-webhook.io", scope)
    assert spec["names"] == {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": kind.lower(),
        "categories": ["irsa-webhook"],
    }
    version = role_crd_version(rendered[RENDER], name)
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"] if c.get("priority", 0) == 0}
    assert columns == {
        "Role ARN": ".status.roleARN",
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Age": ".metadata.creationTimestamp",
    }
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["required"] == ["spec"]
    fields = schema["properties"]["spec"]["properties"]
    # The defaults the design fixes; kube-apiserver filling them in is the e2e test's.
    defaults = {key: field["default"] for key, field in fields.items() if "default" in field}
    want = {
        "path": "/",
        "maxSessionDuration": 3600,
        "audience": "sts.amazonaws.com",
        "adoption": "IfOwned",
        "deletionPolicy": "Delete",
    }
    assert defaults == (want | {"allowWildcards": False} if kind == "ClusterIRSARole" else want)
    assert (fields["maxSessionDuration"]["minimum"], fields["maxSessionDuration"]["maximum"]) == (3600, 43200)
    assert fields["roleName"]["maxLength"] == 64
    assert fields["adoption"]["enum"] == ["Never", "IfOwned", "Always"]
    assert fields["deletionPolicy"]["enum"] == ["Delete", "Retain"]
    assert fields["serviceAccounts"]["items"]["properties"]["create"]["default"] is False
    assert set(fields["serviceAccounts"]["items"]["properties"]) == {"namespace", "name", "create"}
    assert fields["inlinePolicies"]["additionalProperties"]["x-kubernetes-preserve-unknown-fields"] is True
    assert fields["tags"]["additionalProperties"]["type"] == "string"
    status = schema["properties"]["status"]["properties"]
    assert set(status) == {"observedGeneration", "roleARN", "serviceAccounts", "terminal", "conditions"}
    bound = status["serviceAccounts"]["items"]["properties"]
    assert set(bound) == {"namespace", "name", "state"}
    # every state the controller writes (rolebindings.BindingState), or the API server refuses its status
    assert bound["state"]["enum"] == list(get_args(BindingState))
    assert set(status["terminal"]["properties"]) == {"reason", "message"}
    # The conditions are metav1.Condition, as the issuer's.
    issuer = role_crd_version(rendered[RENDER], CRD)["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["conditions"] == issuer["properties"]["conditions"] | {
        "description": status["conditions"]["description"]
    }


def without_descriptions(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: without_descriptions(v) for k, v in schema.items() if k != "description"}
    if isinstance(schema, list):
        return [without_descriptions(v) for v in schema]
    return schema


def test_the_two_role_kinds_differ_only_where_the_design_says(rendered: Rendered) -> None:
    """ClusterIRSARole's spec is IRSARole's plus allowWildcards, with a namespace per ServiceAccount
    that is required and may be a pattern (then not with create: true), and the wildcard rule; the
    rest, the status included, is the same schema."""
    namespaced, cluster = (
        without_descriptions(role_crd_version(rendered[RENDER], name)["schema"]["openAPIV3Schema"])
        for name in (ROLE_CRD, CLUSTER_ROLE_CRD)
    )
    assert namespaced["properties"]["status"] == cluster["properties"]["status"]
    own, anyone = namespaced["properties"]["spec"], cluster["properties"]["spec"]
    assert set(anyone["properties"]) - set(own["properties"]) == {"allowWildcards"}
    assert set(own["properties"]) - set(anyone["properties"]) == set()
    for key in own["properties"]:
        if key != "serviceAccounts":
            assert own["properties"][key] == anyone["properties"][key], key
    own_accounts, any_accounts = own["properties"]["serviceAccounts"], anyone["properties"]["serviceAccounts"]
    assert (own_accounts["x-kubernetes-list-map-keys"], own_accounts["items"]["required"]) == (["name"], ["name"])
    assert any_accounts["x-kubernetes-list-map-keys"] == any_accounts["items"]["required"] == ["namespace", "name"]
    # Only the namespace pattern lets * and ? through; a name is a pattern in neither kind.
    assert not re.search(own_accounts["items"]["properties"]["namespace"]["pattern"], "team-*")
    assert re.search(any_accounts["items"]["properties"]["namespace"]["pattern"], "team-?")
    assert own_accounts["items"]["properties"]["name"] == any_accounts["items"]["properties"]["name"]
    rules = [r["rule"] for r in own["x-kubernetes-validations"]]
    assert rules == [r["rule"] for r in anyone["x-kubernetes-validations"]][: len(rules)]
    assert any("allowWildcards" in r["rule"] for r in anyone["x-kubernetes-validations"])
    assert any("create" in r["rule"] for r in any_accounts["items"]["x-kubernetes-validations"])


def test_the_tenant_role(rendered: Rendered) -> None:
    """IRSARoles for whoever may edit a namespace: aggregated into `edit`, nothing else, and no binding
    of its own (a RoleBinding per namespace is the user's; a ClusterRoleBinding would give every one)."""
    objs = rendered[RENDER]
    tenant = one(objs, "ClusterRole", TENANT)
    assert tenant["rules"] == TENANT_RULES
    assert tenant["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert not [o for o in objs if "Binding" in o["kind"] and o["roleRef"]["name"] == TENANT]


def test_the_cluster_role_grants_exactly_what_the_controller_does(rendered: Rendered) -> None:
    objs = rendered[RENDER]
    assert one(objs, "ClusterRole", NAME)["rules"] == CLUSTER_RULES
    assert one(objs, "Role", NAME)["rules"] == namespaced_rules(NAME)
    subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": NAME}]
    for kind, role_kind in [("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")]:
        binding = one(objs, kind, NAME)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": NAME}
        assert binding["subjects"] == subject
    # Never more than that: no Secrets, no wildcard, no write to any spec, no delete but of the
    # ServiceAccounts it created.
    granted = one(objs, "ClusterRole", NAME)["rules"] + one(objs, "Role", NAME)["rules"]
    for rule in granted:
        assert "*" not in rule["verbs"], rule
        assert "*" not in rule.get("resources", []), rule
        assert not {"deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
        assert "delete" not in rule["verbs"] or rule.get("resources") == ["serviceaccounts"], rule
        assert "update" not in rule["verbs"] or all("/" in r or r == "leases" for r in rule["resources"]), rule
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
    """ci/provisioner.yaml: the role annotation on the ServiceAccount, the guardrails as flags and the
    extra flag appended, the webhook of the same release giving its pods credentials."""
    objs = chart_rendered["helm-provisioner"]
    account = one(objs, "ServiceAccount", NAME)
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/irsa-webhook-provisioner"
    }
    assert controller(objs)["args"] == [
        *ARGS,
        "--require-permissions-boundary=arn:aws:iam::111122223333:policy/tenant-boundary",
        "--allowed-policy-arn=arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
        "--allowed-policy-arn=arn:aws:iam::111122223333:policy/tenant-*",
        "--role-path=/irsa/",
        "--aws-calls-per-second=5",
    ]
    assert one(objs, "ConfigMap", NAME)["data"] == {"cluster-name": CLUSTER}
    labels = one(objs, "Deployment", NAME)["spec"]["template"]["metadata"]["labels"]
    assert webhook_calls(objs, NAME, labels)
    assert not webhook_calls(objs, chart.NAMESPACE, labels)
    webhook_labels = one(objs, "Deployment", chart.RELEASE)["spec"]["template"]["metadata"]["labels"]
    assert not selects(one(objs, "Deployment", NAME)["spec"]["selector"], webhook_labels)
    for service in (o for o in objs if o["kind"] == "Service" and o not in provisioner_objects(objs)):
        assert not selects({"matchLabels": service["spec"]["selector"]}, labels)
    # Helm never deletes a CRD (and so every object of its kind) on uninstall.
    for name in CRDS:
        crd = one(objs, "CustomResourceDefinition", name)
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert one(objs, "ClusterRole", TENANT)["rules"] == TENANT_RULES


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
    tenant = one(objs, "ClusterRole", "edge-irsa-webhook-tenant")
    assert tenant["rules"] == TENANT_RULES
    objs.remove(tenant)
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


def test_the_crds_of_the_chart_can_be_kept_or_not(helm: Path) -> None:
    base = ["--set", f"provisioner.clusterName={CLUSTER}"]
    objs = chart_render(helm, *base, "--set", "provisioner.keepCRDs=false")
    for name in CRDS:
        assert "annotations" not in one(objs, "CustomResourceDefinition", name)["metadata"]


def test_the_tenant_role_can_be_left_out(helm: Path) -> None:
    base = ["--set", f"provisioner.clusterName={CLUSTER}"]
    objs = chart_render(helm, *base, "--set", "provisioner.tenantRole.enabled=false")
    assert [o["metadata"]["name"] for o in provisioner_objects(objs) if o["kind"] == "ClusterRole"] == [NAME]


GUARDRAILS = [
    pytest.param(
        {"requirePermissionsBoundary": ["arn:aws:iam::*:policy/boundary", "arn:aws:iam::1?:policy/b"]},
        [
            "--require-permissions-boundary=arn:aws:iam::*:policy/boundary",
            "--require-permissions-boundary=arn:aws:iam::1?:policy/b",
        ],
        id="boundaries",
    ),
    pytest.param(
        {"allowedPolicyARNs": ["arn:aws:iam::aws:policy/ReadOnlyAccess"]},
        ["--allowed-policy-arn=arn:aws:iam::aws:policy/ReadOnlyAccess"],
        id="allowed-policies",
    ),
    pytest.param({"forbidInlinePolicies": True}, ["--forbid-inline-policies"], id="no-inline-policies"),
    pytest.param({"forbidInlinePolicies": False}, [], id="inline-policies-allowed"),
    pytest.param({"rolePath": "/irsa/"}, ["--role-path=/irsa/"], id="role-path"),
    pytest.param({"roleNamePrefix": "tenant-"}, ["--role-name-prefix=tenant-"], id="role-name-prefix"),
    pytest.param({}, [], id="none"),
]


@pytest.mark.parametrize(("guardrails", "flags"), GUARDRAILS)
def test_the_guardrails_are_flags_rendered_only_when_set(
    helm: Path, tmp_path: Path, guardrails: dict[str, Any], flags: list[str]
) -> None:
    """Each value becomes its flag (a list: the flag once per entry), after the fixed ones and before
    extraArgs; a value left at its default renders nothing, so the controller's default holds."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"provisioner": {"guardrails": guardrails, "extraArgs": ["--v=4"]}}))
    objs = chart_render(helm, "--set", f"provisioner.clusterName={CLUSTER}", "-f", str(values))
    assert controller(objs)["args"] == [*ARGS, *flags, "--v=4"]


@pytest.mark.parametrize(
    ("args", "where"),
    [
        pytest.param(["--set", "provisioner.guardrails.rolePath=irsa"], "rolePath", id="path-without-slashes"),
        pytest.param(["--set", "provisioner.guardrails.rolePath=/irsa"], "rolePath", id="path-without-last-slash"),
        pytest.param(["--set", "provisioner.guardrails.roleNamePrefix=a b"], "roleNamePrefix", id="prefix-space"),
        pytest.param(
            ["--set", "provisioner.guardrails.allowedPolicyARNs={ReadOnlyAccess}"], "allowedPolicyARNs", id="not-an-arn"
        ),
        pytest.param(
            ["--set", "provisioner.guardrails.requirePermissionsBoundary=arn:aws:iam::aws:policy/x"],
            "requirePermissionsBoundary",
            id="boundary-not-a-list",
        ),
        pytest.param(["--set", "provisioner.guardrails.forbidInline=true"], "forbidInline", id="guardrail-typo"),
        pytest.param(["--set", "provisioner.tenantRole.enable=true"], "enable", id="tenant-role-typo"),
    ],
)
def test_the_schema_refuses_bad_guardrails(helm: Path, args: list[str], where: str) -> None:
    result = chart.run(helm, "template", chart.RELEASE, str(chart.CHART), *args, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert where in result.stderr


# --- the examples ---------------------------------------------------------------------------------

EXAMPLES = sorted((REPO / "examples" / "provisioner").glob("*.yaml"))
EXAMPLE_KINDS = {
    "clusterrole-shared.yaml": "ClusterIRSARole",
    "issuer-eks.yaml": "IRSAIssuer",
    "issuer-s3.yaml": "IRSAIssuer",
    "role-s3-reader.yaml": "IRSARole",
}


def test_the_examples() -> None:
    """One object each, of the kind its name says (the e2e CRD tests have kube-apiserver accept them)."""
    assert [p.name for p in EXAMPLES] == sorted(EXAMPLE_KINDS)
    for path in EXAMPLES:
        (obj,) = documents(path.read_text())
        assert (obj["apiVersion"], obj["kind"]) == ("irsa-webhook.io/v1alpha1", EXAMPLE_KINDS[path.name])
    eks: Any = documents((REPO / "examples" / "provisioner" / "issuer-eks.yaml").read_text())[0]
    assert set(eks["spec"]) == {"issuerURL"}  # only the provider is ensured
    # The role trusts the S3 example's issuer, the shared role the EKS example's.
    s3, role, shared = (
        documents((REPO / "examples" / "provisioner" / name).read_text())[0]
        for name in ("issuer-s3.yaml", "role-s3-reader.yaml", "clusterrole-shared.yaml")
    )
    assert role["spec"]["issuerRef"] == s3["metadata"]["name"]
    assert shared["spec"]["issuerURL"] == eks["spec"]["issuerURL"]
