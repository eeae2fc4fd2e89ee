"""The provisioner component (manifests/components/provisioner, on the default overlay) against a real
kube-apiserver: every object passes the server-side dry run with strict fields, its pod is admitted
under the restricted Pod Security level of its namespace, and its RBAC, installed, lets the
controller's ServiceAccount do what the controller does and nothing near it, as kube-apiserver's own
authorizer decides (SubjectAccessReview).

The reviews name the ServiceAccount's user without its groups, so only the component's bindings count:
every ServiceAccount may also read /openid/v1/jwks through the default binding of
system:service-account-issuer-discovery to system:serviceaccounts, which a cluster may have removed.
The chart renders the same RBAC (tests/deploy/test_deploy_provisioner.py compares them).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any, cast

import pytest
import yaml

from tests.deploy.render import documents, render_components
from tests.support import kuberest as k
from tests.support.controlplane import ControlPlane
from tests.support.paths import MANIFESTS

pytestmark = pytest.mark.e2e

NAME = "irsa-webhook-provisioner"  # its objects, its ServiceAccount and its namespace
WEBHOOK_NAMESPACE = "irsa-webhook"
# API groups whose CRDs the control plane does not have (test_e2e_manifests.py says why).
CRD_GROUPS = {"cert-manager.io", "monitoring.coreos.com"}
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


@pytest.fixture(scope="module")
def objs(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> list[k.JSON]:
    root = tmp_path_factory.mktemp("provisioner") / "manifests"
    shutil.copytree(MANIFESTS, root, ignore=shutil.ignore_patterns("generated"))
    return documents(render_components(control_plane.assets / "kubectl", root, "default+provisioner"))


@pytest.fixture(scope="module")
def namespaces(control_plane: ControlPlane, objs: list[k.JSON]) -> None:
    """Both namespaces, really created (namespaced dry runs need them); left for the session, as
    test_e2e_manifests.py leaves the webhook's: without a controller-manager a deleted namespace
    stays Terminating."""
    real = [o for o in objs if o["kind"] == "Namespace"]
    assert {o["metadata"]["name"] for o in real} == {WEBHOOK_NAMESPACE, NAME}
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(real))


def group_of(obj: k.JSON) -> str:
    api_version: str = obj["apiVersion"]
    return api_version.split("/", maxsplit=1)[0] if "/" in api_version else ""


def test_the_render_passes_server_side_dry_run(
    control_plane: ControlPlane, objs: list[k.JSON], namespaces: None
) -> None:
    checked = [o for o in objs if group_of(o) not in CRD_GROUPS]
    output = control_plane.dry_run_apply(checked)
    assert output.count("(server dry run)") == len(checked)
    assert "customresourcedefinition.apiextensions.k8s.io/irsaissuers.irsa-webhook.io" in output
    assert f"deployment.apps/{NAME}" in output


def test_the_controller_pod_is_admitted_under_restricted_pod_security(
    control_plane: ControlPlane, kube: k.KubeRest, objs: list[k.JSON], namespaces: None
) -> None:
    namespace = next(o for o in objs if o["kind"] == "Namespace" and o["metadata"]["name"] == NAME)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    template = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == NAME)["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {**template["metadata"], "name": "controller"}}
    pod["spec"] = template["spec"]
    kube.create(f"/api/v1/namespaces/{NAME}/pods", pod, dry_run=True)
    assert kube.last_warnings == []


@pytest.fixture(scope="module")
def rbac(control_plane: ControlPlane, objs: list[k.JSON], namespaces: None) -> Iterator[None]:
    """The component's ServiceAccount, roles and bindings, installed for real for the reviews."""
    text = yaml.safe_dump_all([o for o in objs if o["kind"] in RBAC_KINDS and o["metadata"]["name"] == NAME])
    control_plane.kubectl("apply", "-f", "-", input=text)
    try:
        yield
    finally:
        control_plane.kubectl("delete", "--ignore-not-found", "-f", "-", input=text)


def allowed(kube: k.KubeRest, attributes: dict[str, Any]) -> bool:
    """kube-apiserver's decision for the controller's ServiceAccount alone (no groups: see above)."""
    key = "nonResourceAttributes" if "path" in attributes else "resourceAttributes"
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": f"system:serviceaccount:{NAME}:{NAME}", key: attributes},
    }
    answer = kube.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    return bool(answer["status"].get("allowed"))


def resource(verb: str, group: str, plural: str, namespace: str = "", name: str = "") -> dict[str, str]:
    plural, _, subresource = plural.partition("/")
    return {
        "verb": verb,
        "group": group,
        "resource": plural,
        "subresource": subresource,
        "namespace": namespace,
        "name": name,
    }


ISSUERS = "irsa-webhook.io"
# What the controller does, and what it must not be able to do; each a SubjectAccessReview.
DECISIONS = [
    # Its objects: read and watch, patch (the finalizer), status, finalizers; never create, delete or
    # update (a whole object: the spec is the user's).
    *[pytest.param(resource(v, ISSUERS, "irsaissuers"), True, id=f"{v}-issuers") for v in ("get", "list", "watch")],
    pytest.param(resource("patch", ISSUERS, "irsaissuers", name="main"), True, id="patch-issuer-finalizer"),
    pytest.param(resource("update", ISSUERS, "irsaissuers/status", name="main"), True, id="update-status"),
    pytest.param(resource("patch", ISSUERS, "irsaissuers/status", name="main"), True, id="patch-status"),
    pytest.param(resource("update", ISSUERS, "irsaissuers/finalizers", name="main"), True, id="update-finalizers"),
    pytest.param(resource("update", ISSUERS, "irsaissuers", name="main"), False, id="no-update-issuer"),
    pytest.param(resource("create", ISSUERS, "irsaissuers"), False, id="no-create-issuer"),
    pytest.param(resource("delete", ISSUERS, "irsaissuers", name="main"), False, id="no-delete-issuer"),
    # Events of cluster-scoped objects are written to "default"; both APIs.
    pytest.param(resource("create", "", "events", namespace="default"), True, id="create-core-events"),
    pytest.param(resource("patch", "", "events", namespace="default", name="e"), True, id="patch-core-events"),
    pytest.param(resource("create", "events.k8s.io", "events", namespace="default"), True, id="create-events"),
    pytest.param(resource("patch", "events.k8s.io", "events", namespace="default", name="e"), True, id="patch-events"),
    pytest.param(resource("delete", "", "events", namespace="default", name="e"), False, id="no-delete-events"),
    # The keys kube-apiserver verifies with, and its discovery document.
    pytest.param({"verb": "get", "path": "/openid/v1/jwks"}, True, id="jwks"),
    pytest.param({"verb": "get", "path": "/.well-known/openid-configuration"}, True, id="discovery"),
    pytest.param({"verb": "get", "path": "/metrics"}, False, id="no-metrics"),
    # Its Lease, by name, in its namespace; create cannot be limited by name, only by namespace.
    pytest.param(resource("get", "coordination.k8s.io", "leases", NAME, NAME), True, id="get-own-lease"),
    pytest.param(resource("update", "coordination.k8s.io", "leases", NAME, NAME), True, id="renew-own-lease"),
    pytest.param(resource("create", "coordination.k8s.io", "leases", NAME), True, id="create-lease"),
    pytest.param(resource("update", "coordination.k8s.io", "leases", NAME, "other"), False, id="no-other-lease"),
    pytest.param(resource("delete", "coordination.k8s.io", "leases", NAME, NAME), False, id="no-delete-lease"),
    pytest.param(resource("create", "coordination.k8s.io", "leases", "kube-system"), False, id="no-lease-elsewhere"),
    pytest.param(
        resource("update", "coordination.k8s.io", "leases", "kube-system", "kube-scheduler"),
        False,
        id="no-scheduler-lease",
    ),
    # A token of its own ServiceAccount (the signing kid), and no other's.
    pytest.param(resource("create", "", "serviceaccounts/token", NAME, NAME), True, id="own-token"),
    pytest.param(resource("create", "", "serviceaccounts/token", NAME, "default"), False, id="no-other-token"),
    pytest.param(
        resource("create", "", "serviceaccounts/token", WEBHOOK_NAMESPACE, "irsa-webhook"),
        False,
        id="no-webhook-token",
    ),
    # Not yet: the roles issue adds ServiceAccount annotation rights. Nothing of Secrets, ever.
    pytest.param(resource("patch", "", "serviceaccounts", "team-a", "app"), False, id="no-serviceaccount-patch"),
    pytest.param(resource("get", "", "secrets", NAME, "any"), False, id="no-secrets"),
    pytest.param(resource("list", "", "secrets"), False, id="no-secrets-listed"),
]


@pytest.mark.parametrize(("attributes", "expected"), DECISIONS)
def test_rbac_as_kube_apiserver_decides(
    kube: k.KubeRest, rbac: None, attributes: dict[str, Any], expected: bool
) -> None:
    assert allowed(kube, attributes) is expected, json.dumps(attributes)


def test_every_rule_is_exercised() -> None:
    """Each rule of the component's roles is granted by at least one allowed decision above: a rule
    nobody needs would show up here."""
    component = MANIFESTS / "components" / "provisioner"
    rules = [
        rule
        for file in ("cluster_role.yaml", "role.yaml")
        for rule in yaml.safe_load((component / file).read_text())["rules"]
    ]
    allowed_params = [cast(dict[str, str], p.values[0]) for p in DECISIONS if p.values[1] is True]
    for rule in rules:
        if "nonResourceURLs" in rule:
            covered = {a["path"] for a in allowed_params if "path" in a}
            assert set(rule["nonResourceURLs"]) <= covered, rule
            continue
        for verb in rule["verbs"]:
            hits = [
                a
                for a in allowed_params
                if "path" not in a
                and a["verb"] == verb
                and a["group"] in rule["apiGroups"]
                and "/".join(filter(None, (a["resource"], a["subresource"]))) in rule["resources"]
            ]
            assert hits, (verb, rule)
