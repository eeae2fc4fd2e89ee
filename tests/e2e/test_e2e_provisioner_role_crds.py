"""The IRSARole and ClusterIRSARole CRDs (manifests/components/provisioner/crd-irsaroles.yaml and
crd-clusterirsaroles.yaml; the chart's copies are the same: tests/deploy/test_deploy_provisioner.py)
in a real kube-apiserver: installed and Established, they accept the role examples in
examples/provisioner and fill in the defaults the design fixes; their schemas and CEL rules refuse
what the object alone shows to be wrong, each with a message that says what to do; the status
subresource and the printer columns work.

One rule of the design the CRD cannot hold: an IRSARole naming another namespace's ServiceAccount.
CRD validation rules see only metadata.name and metadata.generateName of the object, never its
namespace (kube-apiserver refuses a rule that names it, as test_a_rule_cannot_read_the_namespace
shows), so the object is accepted here and the controller refuses it (a terminal condition, no AWS
call).

Objects go through `kubectl apply --dry-run=server --validate=strict` (decoding, defaulting, schema,
CEL, strict fields) except where a stored object is needed (status, columns).
"""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.render import documents
from tests.support import kuberest as k
from tests.support.controlplane import ControlPlane
from tests.support.crds import CLUSTER_ROLE_CRD, CRD_FILES, ROLE_CRD, admitted, dry_run, installed_crds
from tests.support.paths import REPO

pytestmark = pytest.mark.e2e

EXAMPLES = REPO / "examples" / "provisioner"
API_VERSION = "irsa-webhook.io/v1alpha1"
EKS = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
POLICY = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
DOCUMENT = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}


@pytest.fixture(scope="module")
def role_crds(control_plane: ControlPlane) -> Iterator[None]:
    """Both CRDs, Established; deleted again afterwards (so a Helm release can own them in another test)."""
    with installed_crds(control_plane, ROLE_CRD, CLUSTER_ROLE_CRD):
        yield


@pytest.fixture(scope="module")
def namespace(kube: k.KubeRest) -> Iterator[str]:
    """The IRSARoles' namespace (a namespaced dry run needs it to exist)."""
    name = f"role-crds-{secrets.token_hex(3)}"
    kube.create_namespace(name, {})
    try:
        yield name
    finally:
        # Without a controller-manager it stays Terminating, which matches nothing.
        kube.delete(f"/api/v1/namespaces/{name}")


def role(namespace: str, name: str = "s3-reader", **spec: Any) -> dict[str, Any]:
    metadata = {"name": name, "namespace": namespace}
    return {"apiVersion": API_VERSION, "kind": "IRSARole", "metadata": metadata, "spec": spec}


def cluster_role(name: str = "shared", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "ClusterIRSARole", "metadata": {"name": name}, "spec": spec}


def kept(given: Any, stored: Any) -> bool:
    """Whether STORED has everything of GIVEN as given, defaults added at any depth (lists item by item)."""
    if isinstance(given, dict):
        return isinstance(stored, dict) and all(key in stored and kept(v, stored[key]) for key, v in given.items())
    if isinstance(given, list):
        return isinstance(stored, list) and len(stored) == len(given) and all(map(kept, given, stored))
    return bool(given == stored)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*role-*.yaml")), ids=lambda p: p.stem)
def test_the_examples_are_accepted(control_plane: ControlPlane, role_crds: None, namespace: str, path: Path) -> None:
    (example,) = documents(path.read_text())
    if example["kind"] == "IRSARole":
        example["metadata"]["namespace"] = namespace  # the example's production, here
    stored = admitted(control_plane, example)
    # Nothing given is changed; what was left out is defaulted.
    assert kept(example["spec"], stored["spec"])


def test_the_examples_are_both_kinds() -> None:
    kinds = [documents(p.read_text())[0]["kind"] for p in sorted(EXAMPLES.glob("*role-*.yaml"))]
    assert kinds == ["ClusterIRSARole", "IRSARole"]


DEFAULTS = {
    "path": "/",
    "maxSessionDuration": 3600,
    "audience": "sts.amazonaws.com",
    "adoption": "IfOwned",
    "deletionPolicy": "Delete",
}


def test_defaults_are_filled_in(control_plane: ControlPlane, role_crds: None, namespace: str) -> None:
    stored = admitted(control_plane, role(namespace, issuerRef="main", serviceAccounts=[{"name": "app"}]))
    assert stored["spec"] == {"issuerRef": "main", "serviceAccounts": [{"name": "app", "create": False}], **DEFAULTS}
    shared = admitted(control_plane, cluster_role(issuerURL=EKS, serviceAccounts=[{"namespace": "a", "name": "app"}]))
    assert shared["spec"] == {
        "issuerURL": EKS,
        "serviceAccounts": [{"namespace": "a", "name": "app", "create": False}],
        "allowWildcards": False,
        **DEFAULTS,
    }


def test_given_values_stay_as_given(control_plane: ControlPlane, role_crds: None, namespace: str) -> None:
    spec: dict[str, Any] = {
        "issuerURL": EKS,
        "serviceAccounts": [{"name": "app", "namespace": namespace, "create": True}, {"name": "web.v2"}],
        "roleName": "r" * 64,
        "path": "/irsa/tenants/",
        "maxSessionDuration": 43200,
        "permissionsBoundary": "arn:aws-us-gov:iam::123456789012:policy/boundaries/tenant",
        "managedPolicyARNs": [POLICY, "arn:aws:iam::aws:policy/service-role/AmazonEC2RoleforSSM"],
        # A Statement may be one statement or a list; everything else of a document is kept as written.
        "inlinePolicies": {"one": DOCUMENT, "single": {"Version": "2008-10-17", "Statement": {"Effect": "Deny"}}},
        "tags": {"team": "payments", "cost center": "Zürich 1", "k8s:ns/app": "a=b+c@d"},
        "audience": "https://kubernetes.default.svc",
        "adoption": "Always",
        "deletionPolicy": "Retain",
    }
    stored = admitted(control_plane, role(namespace, **spec))["spec"]
    assert kept(spec, stored)
    assert [sa["create"] for sa in stored["serviceAccounts"]] == [True, False]  # the one default filled in
    assert set(stored) == set(spec)


def test_a_pattern_is_accepted_when_allowed(control_plane: ControlPlane, role_crds: None) -> None:
    accounts = [
        {"namespace": "team-*", "name": "app"},
        {"namespace": "t?", "name": "app"},
        {"namespace": "x", "name": "a"},
    ]
    stored = admitted(control_plane, cluster_role(issuerURL=EKS, allowWildcards=True, serviceAccounts=accounts))
    assert [sa["namespace"] for sa in stored["spec"]["serviceAccounts"]] == ["team-*", "t?", "x"]
    # create: true is fine next to patterns, for a ServiceAccount of one namespace.
    mixed: list[dict[str, Any]] = [
        {"namespace": "team-*", "name": "app"},
        {"namespace": "logging", "name": "app", "create": True},
    ]
    admitted(control_plane, cluster_role(issuerURL=EKS, allowWildcards=True, serviceAccounts=mixed))


def test_another_namespace_is_the_controllers_to_refuse(
    control_plane: ControlPlane, role_crds: None, namespace: str
) -> None:
    """The schema cannot see the object's namespace (the module docstring): an IRSARole naming another
    namespace is stored, and the controller refuses it."""
    obj = role(namespace, issuerRef="main", serviceAccounts=[{"namespace": "kube-system", "name": "app"}])
    assert admitted(control_plane, obj)["spec"]["serviceAccounts"] == [
        {"namespace": "kube-system", "name": "app", "create": False}
    ]


def test_a_rule_cannot_read_the_namespace(control_plane: ControlPlane) -> None:
    """Why the rule above is the controller's: kube-apiserver refuses a CRD whose rule reads the
    object's metadata.namespace (escaped or not: namespace is a reserved word of CEL), while the
    same rule on metadata.name compiles. If this ever passes, the IRSARole CRD can hold the rule."""
    (crd,) = documents(CRD_FILES[ROLE_CRD].read_text())
    crd["metadata"] = {"name": "probes.probe.irsa-webhook.io"}
    crd["spec"]["group"] = "probe.irsa-webhook.io"
    crd["spec"]["names"] = {"kind": "Probe", "plural": "probes", "singular": "probe", "listKind": "ProbeList"}
    (version,) = crd["spec"]["versions"]
    root = version["schema"]["openAPIV3Schema"]
    for field, refused in [("namespace", True), ("__namespace__", True), ("name", False)]:
        rule = f"self.spec.serviceAccounts.all(sa, !has(sa.__namespace__) || sa.__namespace__ == self.metadata.{field})"
        root["x-kubernetes-validations"] = [{"rule": rule, "message": "own namespace only"}]
        result = dry_run(control_plane, crd)
        assert (result.returncode != 0) is refused, (field, result.stderr)
        if refused:
            assert f"undefined field '{field}'" in result.stderr, result.stderr


ACCOUNT = [{"name": "app"}]
# Each refused IRSARole spec, and a part of kube-apiserver's answer that says why.
REFUSED = [
    pytest.param({"serviceAccounts": ACCOUNT}, "set exactly one of issuerRef", id="no-issuer"),
    pytest.param(
        {"issuerRef": "main", "issuerURL": EKS, "serviceAccounts": ACCOUNT}, "set exactly one of issuerRef", id="both"
    ),
    pytest.param({"issuerRef": "Main", "serviceAccounts": ACCOUNT}, "issuerRef in body should match", id="bad-ref"),
    pytest.param(
        {"issuerURL": "http://issuer.example.com", "serviceAccounts": ACCOUNT}, "should match '^https://", id="http"
    ),
    pytest.param({"issuerURL": EKS + "/", "serviceAccounts": ACCOUNT}, "must not end with a slash", id="slash"),
    pytest.param({"issuerRef": "main"}, "serviceAccounts: Required value", id="no-service-accounts"),
    pytest.param({"issuerRef": "main", "serviceAccounts": []}, "should have at least 1 items", id="none-bound"),
    pytest.param({"issuerRef": "main", "serviceAccounts": [{}]}, "name: Required value", id="account-without-name"),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": [{"name": "app*"}]}, "name in body should match", id="name-pattern"
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": [{"namespace": "team-*", "name": "app"}]},
        "namespace in body should match",
        id="namespace-pattern",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": [{"name": "app"}, {"name": "app", "create": True}]},
        "Duplicate value",
        id="account-twice",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": [{"name": "app", "create": "yes"}]},
        "must be of type boolean",
        id="create-not-boolean",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "allowWildcards": True},
        'unknown field "spec.allowWildcards"',
        id="wildcards-are-cluster-only",
    ),
    pytest.param({"issuerRef": "main", "serviceAccounts": ACCOUNT, "roleName": "r" * 65}, "Too long", id="long-name"),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "roleName": "team/app"},
        "roleName in body should match",
        id="name-with-slash",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "path": "/irsa"},
        "path in body should match",
        id="path-without-last-slash",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "path": "irsa/"},
        "path in body should match",
        id="path-without-first-slash",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "maxSessionDuration": 900},
        "should be greater than or equal to 3600",
        id="session-too-short",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "maxSessionDuration": 43201},
        "should be less than or equal to 43200",
        id="session-too-long",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "permissionsBoundary": "tenant-boundary"},
        "permissionsBoundary in body should match",
        id="boundary-not-an-arn",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "permissionsBoundary": "arn:aws:iam::123456789012:role/x"},
        "permissionsBoundary in body should match",
        id="boundary-a-role",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "managedPolicyARNs": ["arn:aws:iam::12345:policy/x"]},
        "managedPolicyARNs[0] in body should match",
        id="policy-of-a-short-account",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "managedPolicyARNs": [POLICY, POLICY]},
        "Duplicate value",
        id="policy-twice",
    ),
    pytest.param(
        {
            "issuerRef": "main",
            "serviceAccounts": ACCOUNT,
            "managedPolicyARNs": [f"arn:aws:iam::123456789012:policy/p{i}" for i in range(21)],
        },
        "must have at most 20 items",
        id="more-policies-than-iam-attaches",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "inlinePolicies": {"read config": DOCUMENT}},
        "inline policy names are 1 to 128 of IAM's characters",
        id="inline-policy-name",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "inlinePolicies": {"p": {"Version": "2012-10-17"}}},
        "Statement: Required value",
        id="inline-policy-without-statement",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "inlinePolicies": {"p": {"Statement": []}}},
        "Version: Required value",
        id="inline-policy-without-version",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "inlinePolicies": {"p": {**DOCUMENT, "Version": "2024"}}},
        'supported values: "2012-10-17", "2008-10-17"',
        id="inline-policy-version",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "inlinePolicies": {"p": json.dumps(DOCUMENT)}},
        "must be of type object",
        id="inline-policy-as-a-string",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "tags": {"irsa-webhook.io/owner": "c/irsarole/a/b"}},
        "tag keys under irsa-webhook.io/ are the provisioner's own",
        id="owner-tag",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "tags": {"AWS:cloudformation": "x"}},
        "tag keys starting with aws: are AWS's own",
        id="aws-tag",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "tags": {"team!": "x"}},
        "tag keys are 1 to 128 letters",
        id="tag-key",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "tags": {"team": "a" * 257}},
        "Too long",
        id="tag-value-too-long",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "tags": {"team": "a;b"}},
        "tags.team in body should match",
        id="tag-value",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "tags": {f"t{i}": "x" for i in range(50)}},
        "must have at most 49 items",
        id="more-tags-than-iam-allows-besides-ours",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "audience": ""},
        "should be at least 1 chars long",
        id="empty-audience",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "adoption": "Sometimes"},
        'supported values: "Never", "IfOwned", "Always"',
        id="bad-adoption",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "deletionPolicy": "Destroy"},
        'supported values: "Delete", "Retain"',
        id="bad-deletion-policy",
    ),
    pytest.param(
        {"issuerRef": "main", "serviceAccounts": ACCOUNT, "policies": [POLICY]},
        'unknown field "spec.policies"',
        id="typo",
    ),
]


@pytest.mark.parametrize(("spec", "reason"), REFUSED)
def test_refused(
    control_plane: ControlPlane, role_crds: None, namespace: str, spec: dict[str, Any], reason: str
) -> None:
    result = dry_run(control_plane, role(namespace, **spec))
    assert result.returncode != 0, result.stdout
    assert reason in result.stderr, result.stderr


# Each refused ClusterIRSARole spec: what differs from an IRSARole, and a rule that applies to both.
CLUSTER_REFUSED = [
    pytest.param(
        {"issuerURL": EKS, "serviceAccounts": [{"name": "app"}]},
        "namespace: Required value",
        id="account-without-namespace",
    ),
    pytest.param(
        {"issuerURL": EKS, "serviceAccounts": [{"namespace": "team-*", "name": "app"}]},
        "set allowWildcards: true to mean it",
        id="pattern-not-allowed",
    ),
    pytest.param(
        {"issuerURL": EKS, "allowWildcards": False, "serviceAccounts": [{"namespace": "team-?", "name": "app"}]},
        "set allowWildcards: true to mean it",
        id="pattern-refused-explicitly",
    ),
    pytest.param(
        {
            "issuerURL": EKS,
            "allowWildcards": True,
            "serviceAccounts": [{"namespace": "t*", "name": "a", "create": True}],
        },
        "create: true needs one namespace, not a pattern",
        id="create-with-pattern",
    ),
    pytest.param(
        {"issuerURL": EKS, "allowWildcards": True, "serviceAccounts": [{"namespace": "team-a", "name": "app-*"}]},
        "name in body should match",
        id="name-pattern",
    ),
    pytest.param(
        {"issuerURL": EKS, "serviceAccounts": [{"namespace": "-team", "name": "app"}]},
        "a namespace is lowercase letters, digits and -",
        id="bad-namespace",
    ),
    pytest.param(
        {"issuerURL": EKS, "serviceAccounts": [{"namespace": "Team", "name": "app"}]},
        "namespace in body should match",
        id="uppercase-namespace",
    ),
    pytest.param(
        {"issuerURL": EKS, "serviceAccounts": [{"namespace": "a", "name": "app"}, {"namespace": "a", "name": "app"}]},
        "Duplicate value",
        id="account-twice",
    ),
    pytest.param(
        {"serviceAccounts": [{"namespace": "a", "name": "app"}]}, "set exactly one of issuerRef", id="no-issuer"
    ),
]


@pytest.mark.parametrize(("spec", "reason"), CLUSTER_REFUSED)
def test_cluster_role_refused(control_plane: ControlPlane, role_crds: None, spec: dict[str, Any], reason: str) -> None:
    result = dry_run(control_plane, cluster_role(**spec))
    assert result.returncode != 0, result.stdout
    assert reason in result.stderr, result.stderr


def test_spec_is_required(control_plane: ControlPlane, role_crds: None, namespace: str) -> None:
    for obj in (role(namespace), cluster_role()):
        del obj["spec"]
        result = dry_run(control_plane, obj)
        assert result.returncode != 0
        assert "spec: Required value" in result.stderr, result.stderr


# --- status and columns ---------------------------------------------------------------------------

ARN = "arn:aws:iam::123456789012:role/irsa/production-s3-reader"
CONDITION = {
    "type": "Ready",
    "status": "True",
    "reason": "Converged",
    "message": "trust policy, policies and ServiceAccounts in sync",
    "lastTransitionTime": "2025-01-01T00:00:00Z",
    "observedGeneration": 1,
}


@pytest.fixture(params=["IRSARole", "ClusterIRSARole"])
def stored(
    request: pytest.FixtureRequest, control_plane: ControlPlane, role_crds: None, namespace: str
) -> Iterator[list[str]]:
    """One stored object of each kind; yields the kubectl arguments that name it."""
    if request.param == "IRSARole":
        obj = role(namespace, "columns", issuerRef="main", serviceAccounts=ACCOUNT)
        where = ["irsarole", "columns", "-n", namespace]
    else:
        obj = cluster_role("columns", issuerRef="main", serviceAccounts=[{"namespace": namespace, "name": "app"}])
        where = ["clusterirsarole", "columns"]
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(obj))
    try:
        yield where
    finally:
        control_plane.kubectl("delete", "--ignore-not-found", *where)


def patch_status(
    control_plane: ControlPlane, where: list[str], status: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    body = json.dumps({"status": status})
    return control_plane.kubectl("patch", *where, "--subresource=status", "--type=merge", "-p", body, check=False)


def test_status_subresource_and_columns(control_plane: ControlPlane, namespace: str, stored: list[str]) -> None:
    """The controller's status, as the design shapes it, is accepted through the subresource (and only
    there: status sent with the object is dropped); `kubectl get` shows Role ARN, Ready and Age."""
    status = {
        "observedGeneration": 1,
        "roleARN": ARN,
        "serviceAccounts": [
            {"namespace": namespace, "name": "app", "state": "Created"},
            {"namespace": namespace, "name": "web", "state": "Conflict"},
        ],
        "conditions": [CONDITION, {**CONDITION, "type": "TrustPolicySynced", "reason": "InSync"}],
        "terminal": {"reason": "GuardrailViolated", "message": "the cluster's guardrails refuse this role"},
    }
    result = patch_status(control_plane, stored, status)
    assert result.returncode == 0, result.stderr
    table = control_plane.kubectl("get", *stored).stdout.splitlines()
    assert table[0].split() == ["NAME", "ROLE", "ARN", "READY", "AGE"]
    assert table[1].split()[:3] == ["columns", ARN, "True"]
    wide = control_plane.kubectl("get", *stored, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "ROLE", "ARN", "READY", "REASON", "AGE"]
    assert wide[1].split()[3] == "Converged"
    obj = json.loads(control_plane.kubectl("get", *stored, "-o", "json").stdout)
    assert obj["status"] == status
    # Users write the spec, the controller the status: status sent with the object is ignored.
    changed = copy.deepcopy(obj)
    changed["status"]["roleARN"] = "arn:aws:iam::123456789012:role/elsewhere"
    control_plane.kubectl("replace", "-f", "-", input=json.dumps(changed))
    after = json.loads(control_plane.kubectl("get", *stored, "-o", "json").stdout)
    assert after["status"]["roleARN"] == ARN


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        pytest.param(
            {"serviceAccounts": [{"namespace": "a", "name": "app", "state": "Bound"}]},
            'supported values: "Created", "Annotated", "Pending", "Conflict", "Missing"',
            id="account-state",
        ),
        pytest.param(
            {"serviceAccounts": [{"name": "app", "state": "Created"}]},
            "namespace: Required value",
            id="account-without-namespace",
        ),
        pytest.param(
            {"serviceAccounts": [{"namespace": "a", "name": "b"}, {"namespace": "a", "name": "b"}]},
            "Duplicate value",
            id="account-twice",
        ),
        pytest.param({"terminal": {"message": "x"}}, "reason: Required value", id="terminal-without-reason"),
        pytest.param(
            {"conditions": [{**CONDITION, "status": "Maybe"}]},
            'supported values: "True", "False", "Unknown"',
            id="condition-status",
        ),
        pytest.param({"conditions": [CONDITION, CONDITION]}, "Duplicate value", id="condition-twice"),
        pytest.param({"observedGeneration": -1}, "should be greater than or equal to 0", id="negative-generation"),
    ],
)
def test_status_is_checked_too(
    control_plane: ControlPlane, stored: list[str], status: dict[str, Any], reason: str
) -> None:
    result = patch_status(control_plane, stored, status)
    assert result.returncode != 0
    assert reason in result.stderr, result.stderr
