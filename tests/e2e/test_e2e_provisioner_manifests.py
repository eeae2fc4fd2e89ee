"""The provisioner component (manifests/components/provisioner, on the default overlay) against a real
kube-apiserver: every object passes the server-side dry run with strict fields, its pod is admitted
under the restricted Pod Security level of its namespace, and its RBAC, installed, lets the
controller's ServiceAccount do what the controller does and nothing near it, and a tenant bound to
irsa-webhook-tenant in its namespace write IRSARoles there and nothing else of the provisioner's, as
kube-apiserver's own authorizer decides (SubjectAccessReview).

The reviews name the ServiceAccount's user without its groups, so only the component's bindings count:
every ServiceAccount may also read /openid/v1/jwks through the default binding of
system:service-account-issuer-discovery to system:serviceaccounts, which a cluster may have removed.
The chart renders the same RBAC (tests/deploy/test_deploy_provisioner.py compares them). The tenant
role's aggregation into `edit` is kube-controller-manager's work, absent here: its label is checked
offline, and the tenant is bound to the role itself.
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
TENANT_ROLE = "irsa-webhook-tenant"
TENANT = "alice"  # a user bound to TENANT_ROLE in TENANT_NAMESPACE only
TENANT_NAMESPACE = "team-a"
OTHER_NAMESPACE = "team-b"


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
    for crd in ("irsaissuers", "irsaroles", "clusterirsaroles"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{crd}.irsa-webhook.io" in output
    assert f"clusterrole.rbac.authorization.k8s.io/{TENANT_ROLE}" in output
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
def rbac(control_plane: ControlPlane, kube: k.KubeRest, objs: list[k.JSON], namespaces: None) -> Iterator[None]:
    """The component's ServiceAccount, roles and bindings, installed for real for the reviews; and the
    tenant role, bound to TENANT in TENANT_NAMESPACE as a platform team would (a RoleBinding)."""
    ours = [o for o in objs if o["kind"] in RBAC_KINDS and o["metadata"]["name"] in {NAME, TENANT_ROLE}]
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "irsa-roles", "namespace": TENANT_NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": TENANT_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": TENANT}],
    }
    # Left for the session, as the component's namespaces (see namespaces).
    for namespace in (TENANT_NAMESPACE, OTHER_NAMESPACE):
        if not kube.exists(f"/api/v1/namespaces/{namespace}"):
            kube.create_namespace(namespace, {})
    text = yaml.safe_dump_all([*ours, binding])
    control_plane.kubectl("apply", "-f", "-", input=text)
    try:
        yield
    finally:
        control_plane.kubectl("delete", "--ignore-not-found", "-f", "-", input=text)


def allowed(kube: k.KubeRest, attributes: dict[str, Any], user: str = f"system:serviceaccount:{NAME}:{NAME}") -> bool:
    """kube-apiserver's decision for USER alone (no groups: see above), the controller by default."""
    key = "nonResourceAttributes" if "path" in attributes else "resourceAttributes"
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": user, key: attributes},
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
ROLES = [("irsaroles", "team-a"), ("clusterirsaroles", "")]
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
    # The same for both kinds of role (an IRSARole in any namespace).
    *[
        pytest.param(resource(verb, ISSUERS, plural + sub, namespace, name), True, id=f"{verb}-{plural}{sub}")
        for plural, namespace in ROLES
        for verb, sub, name in [
            ("get", "", "app"),
            ("list", "", ""),
            ("watch", "", ""),
            ("patch", "", "app"),
            ("update", "/status", "app"),
            ("patch", "/status", "app"),
            ("update", "/finalizers", "app"),
        ]
    ],
    *[
        pytest.param(resource(verb, ISSUERS, plural, namespace, name), False, id=f"no-{verb}-{plural}")
        for plural, namespace in ROLES
        for verb, name in [("create", ""), ("update", "app"), ("delete", "app"), ("deletecollection", "")]
    ],
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
    # The ServiceAccounts the roles bind, in any namespace: read, create, annotate (server-side apply is
    # a patch), delete (only those it created: the code's rule). Never update a whole one, nor
    # request another's token. Nothing of Secrets, ever.
    *[
        pytest.param(resource(verb, "", "serviceaccounts", namespace, name), True, id=f"{verb}-sa-{namespace or 'all'}")
        for namespace in ("team-a", "kube-system", "")
        for verb, name in [
            ("get", "app"),
            ("list", ""),
            ("watch", ""),
            ("create", ""),
            ("patch", "app"),
            ("delete", "app"),
        ]
        if namespace or verb in {"list", "watch"}
    ],
    pytest.param(resource("update", "", "serviceaccounts", "team-a", "app"), False, id="no-serviceaccount-update"),
    pytest.param(resource("create", "", "serviceaccounts/token", "team-a", "app"), False, id="no-app-token"),
    pytest.param(resource("deletecollection", "", "serviceaccounts", "team-a"), False, id="no-sa-deletecollection"),
    pytest.param(resource("get", "", "secrets", NAME, "any"), False, id="no-secrets"),
    pytest.param(resource("list", "", "secrets"), False, id="no-secrets-listed"),
]


@pytest.mark.parametrize(("attributes", "expected"), DECISIONS)
def test_rbac_as_kube_apiserver_decides(
    kube: k.KubeRest, rbac: None, attributes: dict[str, Any], expected: bool
) -> None:
    assert allowed(kube, attributes) is expected, json.dumps(attributes)


# A tenant bound to the tenant role in its namespace: IRSARoles there, their status to read; nothing
# in another namespace, nothing of ClusterIRSARoles, issuers or ServiceAccounts (the controller's).
TENANT_DECISIONS = [
    *[
        pytest.param(resource(verb, ISSUERS, "irsaroles", TENANT_NAMESPACE, name), True, id=f"{verb}-own-irsaroles")
        for verb, name in [
            ("get", "app"),
            ("list", ""),
            ("watch", ""),
            ("create", ""),
            ("update", "app"),
            ("patch", "app"),
            ("delete", "app"),
        ]
    ],
    pytest.param(resource("get", ISSUERS, "irsaroles/status", TENANT_NAMESPACE, "app"), True, id="read-own-status"),
    pytest.param(
        resource("patch", ISSUERS, "irsaroles/status", TENANT_NAMESPACE, "app"), False, id="no-write-own-status"
    ),
    pytest.param(
        resource("update", ISSUERS, "irsaroles/finalizers", TENANT_NAMESPACE, "app"), False, id="no-finalizers"
    ),
    *[
        pytest.param(resource(verb, ISSUERS, "irsaroles", OTHER_NAMESPACE), False, id=f"no-{verb}-irsaroles-elsewhere")
        for verb in ("create", "list", "get", "delete")
    ],
    pytest.param(resource("list", ISSUERS, "irsaroles"), False, id="no-irsaroles-of-every-namespace"),
    *[
        pytest.param(resource(verb, ISSUERS, "clusterirsaroles", name="x"), False, id=f"no-{verb}-clusterirsaroles")
        for verb in ("create", "get", "patch")
    ],
    pytest.param(resource("create", ISSUERS, "irsaissuers"), False, id="no-issuers"),
    *[
        pytest.param(resource(verb, "", "serviceaccounts", TENANT_NAMESPACE, "app"), False, id=f"no-{verb}-sa")
        for verb in ("create", "patch", "update", "delete")
    ],
]


@pytest.mark.parametrize(("attributes", "expected"), TENANT_DECISIONS)
def test_tenant_rbac_as_kube_apiserver_decides(
    kube: k.KubeRest, rbac: None, attributes: dict[str, Any], expected: bool
) -> None:
    assert allowed(kube, attributes, TENANT) is expected, json.dumps(attributes)


def uncovered(rules: list[k.JSON], decisions: list[Any]) -> list[tuple[str, str]]:
    """The (verb, resource or URL) pairs of RULES that no allowed decision of DECISIONS exercises."""
    allowed_params = [cast(dict[str, str], p.values[0]) for p in decisions if p.values[1] is True]
    missing: list[tuple[str, str]] = []
    for rule in rules:
        if "nonResourceURLs" in rule:
            covered = {a["path"] for a in allowed_params if "path" in a}
            missing += [("get", url) for url in rule["nonResourceURLs"] if url not in covered]
            continue
        for verb in rule["verbs"]:
            for res in rule["resources"]:
                hits = [
                    a
                    for a in allowed_params
                    if "path" not in a
                    and a["verb"] == verb
                    and a["group"] in rule["apiGroups"]
                    and "/".join(filter(None, (a["resource"], a["subresource"]))) == res
                ]
                missing += [] if hits else [(verb, res)]
    return missing


def test_every_rule_is_exercised() -> None:
    """Each verb on each resource of the component's roles is granted by at least one allowed decision
    above: a rule nobody needs would show up here."""
    component = MANIFESTS / "components" / "provisioner"
    rules = [
        rule
        for file in ("cluster_role.yaml", "role.yaml")
        for rule in yaml.safe_load((component / file).read_text())["rules"]
    ]
    assert uncovered(rules, DECISIONS) == []
    tenant = yaml.safe_load((component / "tenant_cluster_role.yaml").read_text())["rules"]
    assert uncovered(tenant, TENANT_DECISIONS) == []
