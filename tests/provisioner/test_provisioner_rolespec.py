"""Reading an IRSARole or ClusterIRSARole: the defaults, the default role name, one clear line for
every mistake, and the guardrails of tenants' IRSARoles."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from tests.support.cases import load_yaml
from tests.support.paths import CASES
from tests.support.provisioning import merge_patch
from tests.support.roleworld import role_object
from webhook.oidc.errors import InputError
from webhook.provisioner.rolemodel import CLUSTER_ROLE_KIND, ROLE_KIND, BoundServiceAccount, Guardrails
from webhook.provisioner.rolespec import check_guardrails, default_role_name, read_role

SPEC = {"issuerRef": "main", "serviceAccounts": [{"name": "s3-reader"}]}
CLUSTER_SPEC = {"issuerRef": "main", "serviceAccounts": [{"namespace": "tools", "name": "app"}]}


def cluster_role(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return role_object(spec or CLUSTER_SPEC, kind=CLUSTER_ROLE_KIND, name="admin-tool")


def test_defaults() -> None:
    spec = read_role(role_object(SPEC, generation=4), "prod")
    assert (spec.kind, spec.name, spec.namespace, spec.generation) == (ROLE_KIND, "s3-reader", "production", 4)
    assert spec.owner == "prod/irsarole/production/s3-reader"
    assert (spec.issuer_ref, spec.issuer_url) == ("main", None)
    assert spec.service_accounts == (BoundServiceAccount(namespace="production", name="s3-reader", create=False),)
    assert spec.role_name == "production-s3-reader"
    assert (spec.path, spec.max_session_duration, spec.permissions_boundary) == ("/", 3600, None)
    assert (spec.managed_policy_arns, dict(spec.inline_policies), dict(spec.tags)) == ((), {}, {})
    assert (spec.audience, spec.adoption, spec.deletion_policy) == ("sts.amazonaws.com", "IfOwned", "Delete")


def test_everything_given() -> None:
    document = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}
    raw = {
        "issuerURL": "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE",
        "serviceAccounts": [{"name": "a", "namespace": "production", "create": True}, {"name": "b"}],
        "roleName": "Payments+Reader@1",
        "path": "/irsa/tenants/",
        "maxSessionDuration": 43200,
        "permissionsBoundary": "arn:aws-us-gov:iam::111122223333:policy/b/boundary",
        "managedPolicyARNs": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
        "inlinePolicies": {"read": document},
        "tags": {"team": "payments", "Cost Center": "42", "ünïcode": "wert"},
        "audience": "my-audience",
        "adoption": "Always",
        "deletionPolicy": "Retain",
    }
    spec = read_role(role_object(raw), "prod")
    assert spec.issuer_url == "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
    assert [(sa.namespace, sa.name, sa.create) for sa in spec.service_accounts] == [
        ("production", "a", True),
        ("production", "b", False),
    ]
    assert (spec.role_name, spec.path, spec.max_session_duration) == ("Payments+Reader@1", "/irsa/tenants/", 43200)
    assert spec.permissions_boundary == "arn:aws-us-gov:iam::111122223333:policy/b/boundary"
    assert spec.inline_policies == {"read": document}
    assert spec.tags == {"team": "payments", "Cost Center": "42", "ünïcode": "wert"}
    assert (spec.audience, spec.adoption, spec.deletion_policy) == ("my-audience", "Always", "Retain")


def test_cluster_role() -> None:
    raw = {
        "issuerRef": "main",
        "allowWildcards": True,
        "serviceAccounts": [{"namespace": "team-?", "name": "reader"}, {"namespace": "tools", "name": "app"}],
    }
    spec = read_role(cluster_role(raw), "prod")
    assert (spec.kind, spec.name, spec.namespace) == (CLUSTER_ROLE_KIND, "admin-tool", None)
    assert spec.owner == "prod/clusterirsarole/admin-tool"
    assert spec.role_name == "admin-tool"
    assert [(sa.namespace, sa.name) for sa in spec.service_accounts] == [("team-?", "reader"), ("tools", "app")]


def test_input_not_modified() -> None:
    obj = role_object({**SPEC, "inlinePolicies": {"r": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}}})
    before = copy.deepcopy(obj)
    spec = read_role(obj, "c")
    assert obj == before
    obj["spec"]["inlinePolicies"]["r"]["Statement"].append({"Effect": "Deny"})
    assert spec.inline_policies["r"]["Statement"] == [{"Effect": "Allow"}], "the spec shares the input's document"


@pytest.mark.parametrize(
    ("kind", "namespace", "name", "expected"),
    [
        pytest.param(ROLE_KIND, "prod", "app", "prod-app", id="namespaced"),
        pytest.param(CLUSTER_ROLE_KIND, None, "app", "app", id="cluster"),
        pytest.param(ROLE_KIND, "n" * 31, "a" * 32, "n" * 31 + "-" + "a" * 32, id="exactly-64"),
        pytest.param(CLUSTER_ROLE_KIND, None, "a" * 64, "a" * 64, id="cluster-exactly-64"),
    ],
)
def test_default_role_name(kind: str, namespace: str | None, name: str, expected: str) -> None:
    assert default_role_name(kind, namespace, name) == expected


def test_default_role_name_too_long_is_cut_and_hashed() -> None:
    full = "n" * 32 + "-" + "a" * 32  # 65 characters
    short = default_role_name(ROLE_KIND, "n" * 32, "a" * 32)
    assert short == full[:55] + "-" + hashlib.sha256(full.encode()).hexdigest()[:8]
    assert len(short) == 64
    # Two names that share their first 55 characters still get two roles.
    other = default_role_name(ROLE_KIND, "n" * 32, "a" * 31 + "b")
    assert other[:55] == short[:55]
    assert other != short


def test_owner_tag_value_too_long() -> None:
    obj = role_object(SPEC, name="a" * 253, namespace="n" * 63)
    with pytest.raises(InputError, match=r"the owner tag value .* is longer than IAM's 256 characters"):
        read_role(obj, "cluster")


def test_inline_policies_too_large_together() -> None:
    big = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "a" * 5200}],
    }
    with pytest.raises(InputError, match="IAM allows 10240 for all of a role's inline policies together"):
        read_role(role_object({**SPEC, "inlinePolicies": {"a": big, "b": big}}), "c")
    assert read_role(role_object({**SPEC, "inlinePolicies": {"a": big}}), "c")


def test_tag_limits() -> None:
    assert read_role(role_object({**SPEC, "tags": {f"k{i}": "v" for i in range(49)}}), "c")
    with pytest.raises(InputError, match=r"spec\.tags has 50 tags: IAM allows 50 per role, one of them the owner tag"):
        read_role(role_object({**SPEC, "tags": {f"k{i}": "v" for i in range(50)}}), "c")
    assert read_role(role_object({**SPEC, "tags": {"k" * 128: "v" * 256, "empty": ""}}), "c")
    with pytest.raises(InputError, match="a tag value is at most 256"):
        read_role(role_object({**SPEC, "tags": {"k": "v" * 257}}), "c")


def test_cluster_name_required() -> None:
    with pytest.raises(InputError, match="the cluster name is empty: pass --cluster-name"):
        read_role(role_object(SPEC), "")


def test_not_a_mapping() -> None:
    with pytest.raises(InputError, match="an IRSARole must be a mapping, not list"):
        read_role([], "c")  # type: ignore[arg-type]


BAD = load_yaml(CASES / "roles-spec" / "bad-objects.yaml")
NAMELESS = {"apiVersion", "kind", "no-name", "no-namespace", "cluster-role-namespace"}


def _bad_object(row: dict[str, Any]) -> dict[str, Any]:
    assert ("spec" in row) != ("object" in row), f"{row['id']}: give spec or object"
    cluster = row.get("kind") == CLUSTER_ROLE_KIND
    if "spec" in row:
        return cluster_role(row["spec"]) if cluster else role_object(row["spec"])
    return merge_patch(cluster_role() if cluster else role_object(SPEC), row["object"])  # type: ignore[no-any-return]


def test_bad_rows_are_unique() -> None:
    ids = [row["id"] for row in BAD]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 60


@pytest.mark.parametrize("row", [pytest.param(row, id=row["id"]) for row in BAD])
def test_bad_object(row: dict[str, Any]) -> None:
    with pytest.raises(InputError) as caught:
        read_role(_bad_object(row), "c")
    message = str(caught.value)
    assert row["error"] in message
    assert "\n" not in message
    if row["id"] not in NAMELESS:
        prefix = "ClusterIRSARole admin-tool: " if row.get("kind") else "IRSARole production/s3-reader: "
        assert message.startswith(prefix), message


# --- guardrails -----------------------------------------------------------------------------------


def _tenant(**spec: Any) -> Any:
    return read_role(role_object({**SPEC, **spec}), "c")


def test_no_guardrails_allow_everything() -> None:
    assert (
        check_guardrails(_tenant(inlinePolicies={"a": {"Version": "2012-10-17", "Statement": [{}]}}), Guardrails())
        is None
    )


@pytest.mark.parametrize(
    ("pattern", "arn", "allowed"),
    [
        pytest.param(
            "arn:aws:iam::aws:policy/*", "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess", True, id="star"
        ),
        pytest.param(
            "arn:aws:iam::111122223333:policy/team-?", "arn:aws:iam::111122223333:policy/team-a", True, id="qm"
        ),
        pytest.param(
            "arn:aws:iam::111122223333:policy/team-?", "arn:aws:iam::111122223333:policy/team-ab", False, id="qm-one"
        ),
        pytest.param(
            "arn:aws:iam::111122223333:policy/Team", "arn:aws:iam::111122223333:policy/team", False, id="case"
        ),
        pytest.param("arn:aws:iam::111122223333:policy/a.b", "arn:aws:iam::111122223333:policy/aXb", False, id="dot"),
        pytest.param("arn:aws:iam::111122223333:policy/t", "arn:aws:iam::111122223333:policy/t2", False, id="whole"),
    ],
)
def test_policy_patterns(pattern: str, arn: str, allowed: bool) -> None:
    found = check_guardrails(_tenant(managedPolicyARNs=[arn]), Guardrails(allowed_policy_arns=(pattern,)))
    assert (found is None) is allowed, found
    boundary = check_guardrails(_tenant(permissionsBoundary=arn), Guardrails(require_permissions_boundary=(pattern,)))
    assert (boundary is None) is allowed, boundary


@pytest.mark.parametrize(
    ("forced", "path", "allowed"),
    [
        pytest.param("/tenants/", "/tenants/", True, id="same"),
        pytest.param("/tenants/", "/tenants/production/", True, id="under"),
        pytest.param("/tenants", "/tenants/production/", True, id="forced-without-slash"),
        pytest.param("/tenants", "/tenants-evil/", False, id="sibling"),
        pytest.param("/tenants/", "/", False, id="root"),
    ],
)
def test_forced_path(forced: str, path: str, allowed: bool) -> None:
    found = check_guardrails(_tenant(path=path), Guardrails(role_path=forced))
    assert (found is None) is allowed, found


def test_guardrails_never_apply_to_cluster_roles() -> None:
    strict = Guardrails(
        require_permissions_boundary=("arn:aws:iam::111122223333:policy/b",),
        allowed_policy_arns=("arn:aws:iam::111122223333:policy/none",),
        forbid_inline_policies=True,
        role_path="/tenants/",
        role_name_prefix="tenant-",
    )
    raw = {**CLUSTER_SPEC, "managedPolicyARNs": ["arn:aws:iam::aws:policy/AdministratorAccess"]}
    assert check_guardrails(read_role(cluster_role(raw), "c"), strict) is None
    assert check_guardrails(_tenant(managedPolicyARNs=["arn:aws:iam::aws:policy/AdministratorAccess"]), strict)


@pytest.mark.parametrize(
    ("path", "valid"),
    [
        pytest.param("/", True, id="root"),
        pytest.param("/a/b/", True, id="nested"),
        pytest.param("/" + "a" * 510 + "/", True, id="512"),
        pytest.param("/" + "a" * 511 + "/", False, id="513"),
        pytest.param("//", False, id="empty-segment"),
        pytest.param("/a!/", False, id="beyond-the-role-arn-characters"),
    ],
)
def test_path_limits(path: str, valid: bool) -> None:
    obj = role_object({**SPEC, "path": path})
    if valid:
        assert read_role(obj, "c").path == path
    else:
        with pytest.raises(InputError, match="is not an IAM path"):
            read_role(obj, "c")
