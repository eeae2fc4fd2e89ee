"""The role executor (``webhook.provisioner.roleexecute``) against moto's server and the fake API
server: each kind of change applied, then observed back by the role observer; one IAM call per AWS
change, counted by its action; removals of what is already gone count as made; the first failure
stops the run and says what was applied before it (a role deleted before its policies is refused
by IAM, as the deletion order must prevent)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.awsstate import make_policy, permission_policy, role_trust_policy
from tests.support.kubeapi import FakeApiServer, FakeCluster, service_account, serviceaccounts
from tests.support.moto import ACCOUNT, MotoServer
from webhook.aws.session import AwsClients
from webhook.kube.serviceaccountwrites import annotated_by, read_service_account
from webhook.provisioner import rolemodel
from webhook.provisioner.executor import ExecutionStopped
from webhook.provisioner.model import OWNER_TAG, Change
from webhook.provisioner.roleexecute import ACTIONS, execute_role
from webhook.provisioner.rolemodel import (
    CREATED_BY_ANNOTATION,
    FIELD_MANAGER,
    AnnotateServiceAccount,
    AttachPolicy,
    CreateRole,
    CreateServiceAccount,
    DeleteInlinePolicy,
    DeletePermissionsBoundary,
    DeleteRole,
    DeleteServiceAccount,
    DetachPolicy,
    ObservedRole,
    PutInlinePolicy,
    PutPermissionsBoundary,
    TagRole,
    UntagRole,
    UpdateMaxSessionDuration,
    UpdateTrustPolicy,
)
from webhook.provisioner.roleobserve import observe_role

ROLE = "production-app"
OWNER = "test-cluster/irsarole/production/app"
NS = "production"
KEY = "eks.amazonaws.com/role-arn"
ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
C = TypeVar("C", bound=Change)


def change(cls: type[C], target: str = ROLE, **fields: Any) -> C:
    """A change as the planner makes it: the action of its kind, a target and a summary."""
    return cls(ACTIONS[cls], target, f"{cls.__name__} {target}", **fields)


def create_role(**fields: Any) -> CreateRole:
    values: dict[str, Any] = {"role_name": ROLE, "trust_policy": role_trust_policy(), "tags": {OWNER_TAG: OWNER}}
    return change(CreateRole, **(values | fields))


def observed(aws: AwsClients) -> ObservedRole:
    role = observe_role(ROLE, aws)
    assert role is not None
    return role


def run_one(aws: AwsClients, one: Change) -> dict[str, int]:
    """Apply one change; the calls it made."""
    before = aws.tally.calls()
    assert execute_role([one], aws, None, KEY) == [one]
    return aws.tally.since(before)


# --- IAM ------------------------------------------------------------------------------------------------


def test_create_a_role_with_everything_in_one_call(moto: MotoServer) -> None:
    boundary = make_policy("boundary")
    aws = AwsClients()
    new = create_role(path="/irsa/", max_session_duration=7200, permissions_boundary=boundary, tags={OWNER_TAG: OWNER})
    assert run_one(aws, new) == {"iam:CreateRole": 1}
    assert observed(aws) == ObservedRole(
        arn=f"arn:aws:iam::{ACCOUNT}:role/irsa/{ROLE}",
        path="/irsa/",
        trust_policy=role_trust_policy(),
        max_session_duration=7200,
        permissions_boundary=boundary,
        tags={OWNER_TAG: OWNER},
        managed_policy_arns=(),
        inline_policies={},
    )


def test_create_a_role_without_boundary_or_tags(moto: MotoServer) -> None:
    aws = AwsClients()
    run_one(aws, create_role(tags={}))
    role = observed(aws)
    assert (role.path, role.max_session_duration, role.permissions_boundary, role.tags) == ("/", 3600, None, {})


def test_trust_policy_and_max_session_updated(moto: MotoServer) -> None:
    aws = AwsClients()
    run_one(aws, create_role())
    trust = role_trust_policy("production:app", "production:worker")
    assert run_one(aws, change(UpdateTrustPolicy, role_name=ROLE, trust_policy=trust)) == {
        "iam:UpdateAssumeRolePolicy": 1
    }
    assert run_one(aws, change(UpdateMaxSessionDuration, role_name=ROLE, max_session_duration=14400)) == {
        "iam:UpdateRole": 1
    }
    role = observed(aws)
    assert (role.trust_policy, role.max_session_duration) == (trust, 14400)


def test_boundary_put_and_deleted(moto: MotoServer) -> None:
    boundary = make_policy("boundary")
    aws = AwsClients()
    run_one(aws, create_role())
    assert run_one(aws, change(PutPermissionsBoundary, role_name=ROLE, boundary=boundary)) == {
        "iam:PutRolePermissionsBoundary": 1
    }
    assert observed(aws).permissions_boundary == boundary
    assert run_one(aws, change(DeletePermissionsBoundary, role_name=ROLE)) == {"iam:DeleteRolePermissionsBoundary": 1}
    assert observed(aws).permissions_boundary is None


def test_policies_attached_detached_put_and_deleted(moto: MotoServer) -> None:
    reader, writer = make_policy("reader"), make_policy("writer", "s3:PutObject")
    aws = AwsClients()
    run_one(aws, create_role())
    assert run_one(aws, change(AttachPolicy, role_name=ROLE, policy_arn=reader)) == {"iam:AttachRolePolicy": 1}
    run_one(aws, change(AttachPolicy, role_name=ROLE, policy_arn=writer))
    document = permission_policy("s3:GetObject", "arn:aws:s3:::config/*")
    assert run_one(aws, change(PutInlinePolicy, role_name=ROLE, policy_name="read-config", document=document)) == {
        "iam:PutRolePolicy": 1
    }
    role = observed(aws)
    assert sorted(role.managed_policy_arns) == sorted([reader, writer])
    assert role.inline_policies == {"read-config": document}
    assert run_one(aws, change(DetachPolicy, role_name=ROLE, policy_arn=writer)) == {"iam:DetachRolePolicy": 1}
    assert run_one(aws, change(DeleteInlinePolicy, role_name=ROLE, policy_name="read-config")) == {
        "iam:DeleteRolePolicy": 1
    }
    role = observed(aws)
    assert (role.managed_policy_arns, role.inline_policies) == ((reader,), {})


def test_tags_added_changed_and_removed(moto: MotoServer) -> None:
    aws = AwsClients()
    run_one(aws, create_role(tags={OWNER_TAG: OWNER, "team": "a", "old": "x"}))
    assert run_one(aws, change(TagRole, role_name=ROLE, tags={"team": "b", "cost": "1"})) == {"iam:TagRole": 1}
    assert run_one(aws, change(UntagRole, role_name=ROLE, keys=("old",))) == {"iam:UntagRole": 1}
    assert observed(aws).tags == {OWNER_TAG: OWNER, "team": "b", "cost": "1"}


def test_deletion_in_order_leaves_nothing(moto: MotoServer) -> None:
    reader, boundary = make_policy("reader"), make_policy("boundary")
    aws = AwsClients()
    run_one(aws, create_role(permissions_boundary=boundary))
    run_one(aws, change(AttachPolicy, role_name=ROLE, policy_arn=reader))
    run_one(aws, change(PutInlinePolicy, role_name=ROLE, policy_name="p", document=permission_policy()))
    deletion = [
        change(DetachPolicy, role_name=ROLE, policy_arn=reader),
        change(DeleteInlinePolicy, role_name=ROLE, policy_name="p"),
        change(DeleteRole, role_name=ROLE),
    ]
    before = aws.tally.calls()
    assert execute_role(deletion, aws, None, KEY) == deletion
    assert aws.tally.since(before) == {"iam:DetachRolePolicy": 1, "iam:DeleteRolePolicy": 1, "iam:DeleteRole": 1}
    assert observe_role(ROLE, aws) is None


@pytest.mark.parametrize("attached", ["managed", "inline"])
def test_a_role_deleted_before_its_policies_is_refused_and_stops_the_run(moto: MotoServer, attached: str) -> None:
    aws = AwsClients()
    run_one(aws, create_role())
    if attached == "managed":
        run_one(aws, change(AttachPolicy, role_name=ROLE, policy_arn=make_policy("reader")))
    else:
        run_one(aws, change(PutInlinePolicy, role_name=ROLE, policy_name="p", document=permission_policy()))
    untag = change(UntagRole, role_name=ROLE, keys=("team",))
    delete = change(DeleteRole, role_name=ROLE)
    never = change(TagRole, role_name=ROLE, tags={"after": "x"})
    with pytest.raises(ExecutionStopped) as raised:
        execute_role([untag, delete, never], aws, None, KEY)
    stopped = raised.value
    assert (stopped.kind, stopped.code, stopped.action) == ("terminal", "DeleteConflict", "iam:DeleteRole")
    assert (stopped.change, stopped.applied) == (delete, (untag,))
    assert f"iam:DeleteRole for {ROLE}" in stopped.message
    assert "iam:TagRole" not in aws.tally.calls()  # the change after the failure was not attempted
    assert observe_role(ROLE, aws) is not None


def test_removing_what_is_already_gone_counts_as_made(moto: MotoServer) -> None:
    # A run cut short and repeated (or someone else's cleanup) must not stop a deletion.
    aws = AwsClients()
    run_one(aws, create_role())
    gone = [
        change(DetachPolicy, role_name=ROLE, policy_arn=make_policy("never-attached")),
        change(DeleteInlinePolicy, role_name=ROLE, policy_name="never-put"),
        change(DeletePermissionsBoundary, role_name=ROLE),
        change(DeleteRole, role_name=ROLE),
        change(DeleteRole, role_name=ROLE),
        change(UntagRole, role_name=ROLE, keys=(OWNER_TAG,)),
    ]
    assert execute_role(gone, aws, None, KEY) == gone
    assert observe_role(ROLE, aws) is None


def test_a_write_to_something_missing_is_not_forgiven(moto: MotoServer) -> None:
    aws = AwsClients()
    run_one(aws, create_role())
    attach = change(AttachPolicy, role_name=ROLE, policy_arn=f"arn:aws:iam::{ACCOUNT}:policy/no-such-policy")
    with pytest.raises(ExecutionStopped) as raised:
        execute_role([attach], aws, None, KEY)
    assert (raised.value.kind, raised.value.code, raised.value.applied) == ("terminal", "NoSuchEntity", ())


def test_a_whole_role_in_one_run_one_call_per_change(moto: MotoServer) -> None:
    reader = make_policy("reader")
    aws = AwsClients()
    changes = [
        create_role(),
        change(AttachPolicy, role_name=ROLE, policy_arn=reader),
        change(PutInlinePolicy, role_name=ROLE, policy_name="p", document=permission_policy()),
        change(TagRole, role_name=ROLE, tags={"team": "a"}),
    ]
    before = aws.tally.calls()
    assert execute_role(changes, aws, None, KEY) == changes
    assert aws.tally.since(before) == {ACTIONS[type(c)]: 1 for c in changes}


def test_nothing_to_do_makes_no_call(moto: MotoServer) -> None:
    aws = AwsClients()
    assert execute_role([], aws, None, KEY) == []
    assert aws.tally.calls() == {}


def test_an_unknown_kind_of_change_is_a_bug_not_an_aws_error(moto: MotoServer) -> None:
    with pytest.raises(TypeError, match="no call for a change of type Change"):
        execute_role([Change("iam:Nothing", "x", "nothing")], AwsClients(), None, KEY)


def test_every_kind_of_role_change_has_its_call() -> None:
    kinds = {c for c in vars(rolemodel).values() if isinstance(c, type) and issubclass(c, Change) and c is not Change}
    assert set(ACTIONS) == kinds


# --- ServiceAccounts ------------------------------------------------------------------------------------


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster(service_accounts=[service_account(NS, "theirs", uid="uid-theirs", annotations={"note": "x"})])


@pytest.fixture
def kube_api(cluster: FakeCluster, tmp_path: Path) -> Iterator[Any]:
    with FakeApiServer(cluster) as server:
        yield server.api_client(tmp_path)


def sa(namespace: str = NS, name: str = "theirs") -> str:
    return f"{namespace}/{name}"


def annotate(name: str, annotations: dict[str, str]) -> AnnotateServiceAccount:
    return change(AnnotateServiceAccount, sa(name=name), namespace=NS, name=name, annotations=annotations)


def stored_annotations(kube_api: Any, name: str) -> dict[str, str] | None:
    found = read_service_account(kube_api, NS, name)
    return None if found is None else dict(found["metadata"].get("annotations") or {})


def test_annotate_then_retract_a_service_account_we_did_not_create(moto: MotoServer, kube_api: Any) -> None:
    aws = AwsClients()
    assert execute_role([annotate("theirs", {KEY: ARN})], aws, kube_api, KEY)
    found = read_service_account(kube_api, NS, "theirs")
    assert found is not None
    assert found["metadata"]["annotations"] == {"note": "x", KEY: ARN}
    assert annotated_by(found, KEY, FIELD_MANAGER)
    assert execute_role([annotate("theirs", {})], aws, kube_api, KEY)
    assert stored_annotations(kube_api, "theirs") == {"note": "x"}
    assert aws.tally.calls() == {}  # no AWS call for a ServiceAccount


def test_create_annotate_and_delete_a_service_account_of_ours(moto: MotoServer, kube_api: Any) -> None:
    aws = AwsClients()
    create = change(
        CreateServiceAccount,
        sa(name="app"),
        namespace=NS,
        name="app",
        annotations={KEY: ARN, CREATED_BY_ANNOTATION: OWNER},
    )
    assert execute_role([create], aws, kube_api, KEY) == [create]
    found = read_service_account(kube_api, NS, "app")
    assert found is not None
    assert found["metadata"]["annotations"] == {KEY: ARN, CREATED_BY_ANNOTATION: OWNER}
    # The role annotation is ours by server-side apply, like on any ServiceAccount: retracted the same way.
    assert annotated_by(found, KEY, FIELD_MANAGER)
    execute_role([annotate("app", {})], aws, kube_api, KEY)
    assert stored_annotations(kube_api, "app") == {CREATED_BY_ANNOTATION: OWNER}
    delete = change(DeleteServiceAccount, sa(name="app"), namespace=NS, name="app")
    assert execute_role([delete], aws, kube_api, KEY) == [delete]
    assert read_service_account(kube_api, NS, "app") is None
    assert execute_role([delete], aws, kube_api, KEY) == [delete]  # gone already: done


def test_a_service_account_without_our_mark_is_never_deleted(moto: MotoServer, kube_api: Any) -> None:
    delete = change(DeleteServiceAccount, sa(), namespace=NS, name="theirs")
    with pytest.raises(ExecutionStopped) as raised:
        execute_role([delete], AwsClients(), kube_api, KEY)
    assert (raised.value.kind, raised.value.action) == ("retryable", "kubernetes:DeleteServiceAccount")
    assert f"no longer carries {CREATED_BY_ANNOTATION}: it is not ours, not deleted" in raised.value.message
    assert stored_annotations(kube_api, "theirs") == {"note": "x"}


def test_another_managers_role_annotation_stops_the_run(moto: MotoServer, cluster: FakeCluster, kube_api: Any) -> None:
    other = service_account(NS, "taken", annotations={KEY: "arn:aws:iam::123456789012:role/other"})
    with cluster.lock:
        serviceaccounts.create(cluster.service_accounts, NS, other, "helm")
    first, taken, never = annotate("theirs", {KEY: ARN}), annotate("taken", {KEY: ARN}), annotate("absent", {})
    with pytest.raises(ExecutionStopped) as raised:
        execute_role([first, taken, never], AwsClients(), kube_api, KEY)
    stopped = raised.value
    assert (stopped.kind, stopped.code, stopped.action) == (
        "retryable",
        "FieldManagerConflict",
        "kubernetes:ApplyServiceAccount",
    )
    assert (stopped.change, stopped.applied) == (taken, (first,))
    assert stored_annotations(kube_api, "taken") == {KEY: "arn:aws:iam::123456789012:role/other"}


def test_a_missing_service_account_is_not_annotated_nor_created(moto: MotoServer, kube_api: Any) -> None:
    retract = annotate("absent", {})
    assert execute_role([retract], AwsClients(), kube_api, KEY) == [retract]  # nothing to retract
    with pytest.raises(ExecutionStopped, match=r"does not exist .*: not annotated") as raised:
        execute_role([annotate("absent", {KEY: ARN})], AwsClients(), kube_api, KEY)
    assert raised.value.kind == "retryable"
    assert read_service_account(kube_api, NS, "absent") is None


def test_forbidden_service_account_writes_name_the_grant(moto: MotoServer, cluster: FakeCluster, kube_api: Any) -> None:
    cluster.forbidden.add("patch")
    with pytest.raises(ExecutionStopped) as raised:
        execute_role([annotate("theirs", {KEY: ARN})], AwsClients(), kube_api, KEY)
    assert (raised.value.kind, raised.value.code) == ("access-denied", "403")
    assert raised.value.message.endswith(
        f"grant the provisioner's ServiceAccount patch on serviceaccounts in namespace {NS}"
    )


def test_without_a_cluster_a_service_account_change_stops_the_run(moto: MotoServer) -> None:
    aws = AwsClients()
    first = create_role()
    with pytest.raises(ExecutionStopped) as raised:
        execute_role([first, annotate("theirs", {KEY: ARN})], aws, None, KEY)
    assert (raised.value.kind, raised.value.applied) == ("terminal", (first,))
    assert "no cluster to write ServiceAccounts to (give --kubeconfig)" in raised.value.message
