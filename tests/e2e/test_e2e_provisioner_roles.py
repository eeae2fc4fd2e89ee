"""Workload roles end to end: IRSARole and ClusterIRSARole applied from a laptop and by the controller,
proven by pods whose tokens the verifying STS exchanges (or refuses), with ownership and drift.

The stack is the issuer module's (tests/e2e/provisioning.py): a kube-apiserver whose issuer is the S3
issuer URL, the webhook registered on it, moto behind the call recorder, and the verifying STS, which
evaluates each role's trust policy as stored in IAM against the token's claims.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.support import kuberest as k
from tests.support.certs import Certs
from tests.support.crds import issuer_crd, role_crds
from tests.support.moto import ACCOUNT, MotoServer
from tests.support.paths import REPO
from tests.support.server import Server
from tests.support.waits import wait_for

from .chain import ChainBroken, assumed_role_arn_prefix, caller_identity
from .provisioning import (
    LABEL,
    SETTLE,
    Stack,
    condition,
    credentials_through_a_pod,
    issuer_object,
    provision,
    running_stack,
    running_webhook,
    start_controller,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

GROUP = "/apis/irsa-webhook.io/v1alpha1"
# moto has no AWS-managed policies: a customer-managed one, made with the stack
READ_ONLY = f"arn:aws:iam::{ACCOUNT}:policy/reports-read-only"
INLINE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*"}],
}


@pytest.fixture(scope="module")
def stack(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(moto_server, tmp_path_factory.mktemp("provisioner-roles")) as running:
        issuer = provision(running, "apply", issuer_object(running.issuer))
        assert issuer.returncode == 0, issuer.stdout + issuer.stderr
        running.iam().create_policy(PolicyName="reports-read-only", PolicyDocument=json.dumps(INLINE))
        yield running


@pytest.fixture(scope="module")
def webhook(stack: Stack, tmp_path_factory: pytest.TempPathFactory, webhook_certs: Certs) -> Iterator[Server]:
    with running_webhook(stack, tmp_path_factory.mktemp("roles-webhook"), webhook_certs) as server:
        yield server


def role_object(namespace: str, name: str = "reader", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "irsa-webhook.io/v1alpha1",
        "kind": "IRSARole",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "issuerRef": "main",
            "serviceAccounts": [{"name": "reader"}, {"name": "writer", "create": True}],
            "managedPolicyARNs": [READ_ONLY],
            "inlinePolicies": {"read-reports": INLINE},
            "tags": {"team": "payments"},
            **spec,
        },
    }


def namespace(stack: Stack, prefix: str) -> str:
    name = f"{prefix}-{os.getpid()}"
    stack.kube.create_namespace(name, LABEL)
    return name


def service_account(stack: Stack, ns: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = stack.kube.get(f"/api/v1/namespaces/{ns}/serviceaccounts/{name}")
    return found


def annotation(stack: Stack, ns: str, name: str) -> str | None:
    value = (service_account(stack, ns, name)["metadata"].get("annotations") or {}).get(k.ROLE_ANNOTATION)
    return value if isinstance(value, str) else None


def test_a_role_from_a_laptop_binds_its_service_accounts_and_no_other(
    stack: Stack, webhook: Server, tmp_path: Path
) -> None:
    ns = namespace(stack, "payments")
    # a ServiceAccount the user made, with fields of its own that must survive everything
    stack.kube.create(
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "reader", "labels": {"app": "reports"}, "annotations": {"owner": "team-payments"}},
        },
    )
    role = role_object(ns)
    plan = provision(stack, "plan", issuer_object(stack.issuer), role)
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert "iam:CreateRole" in plan.stdout

    applied = provision(stack, "apply", issuer_object(stack.issuer), role)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    role_arn = annotation(stack, ns, "reader")
    assert role_arn is not None
    assert role_arn.startswith(f"arn:aws:iam::{ACCOUNT}:role/")
    assert annotation(stack, ns, "writer") == role_arn  # created, annotated
    reader = service_account(stack, ns, "reader")["metadata"]
    assert reader["labels"] == {"app": "reports"}
    assert reader["annotations"]["owner"] == "team-payments"

    # converged: plan in sync, a second apply writes nothing
    assert provision(stack, "plan", issuer_object(stack.issuer), role).returncode == 0
    mark = len(stack.recorder.writes())
    assert provision(stack, "apply", issuer_object(stack.issuer), role).returncode == 0
    assert [c for c in stack.recorder.writes()[mark:] if c.service != "sts"] == []

    # a bound ServiceAccount's pod gets the role's credentials through the verifying STS
    env, _ = credentials_through_a_pod(stack, ns, "reports", tmp_path / "bound", service_account="reader")
    assert caller_identity(env)["Arn"].startswith(assumed_role_arn_prefix(role_arn))
    # a ServiceAccount annotated by hand with the same role, but not bound by the object: refused
    stack.kube.create_service_account(ns, "intruder", {k.ROLE_ANNOTATION: role_arn})
    env, _ = credentials_through_a_pod(stack, ns, "intrusion", tmp_path / "unbound", service_account="intruder")
    with pytest.raises(ChainBroken, match="AccessDenied"):
        caller_identity(env)
    assert stack.sts.decisions[-1].allowed is False

    # drift made by hand: trust policy, a detached policy, a deleted inline policy, a tag, the annotation
    iam = stack.iam()
    name = role_arn.rsplit("/", 1)[-1]
    hijacked = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(hijacked))
    iam.detach_role_policy(RoleName=name, PolicyArn=READ_ONLY)
    iam.delete_role_policy(RoleName=name, PolicyName="read-reports")
    iam.tag_role(RoleName=name, Tags=[{"Key": "team", "Value": "someone-else"}])
    stack.kube.merge_patch(
        f"/api/v1/namespaces/{ns}/serviceaccounts/writer", {"metadata": {"annotations": {k.ROLE_ANNOTATION: None}}}
    )
    drift = provision(stack, "plan", issuer_object(stack.issuer), role, extra=("-o", "json"))
    assert drift.returncode == 1, drift.stderr
    actions = {c["action"] for c in json.loads(drift.stdout)[-1]["changes"]}
    assert {"iam:UpdateAssumeRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePolicy", "iam:TagRole"} <= actions
    assert provision(stack, "apply", issuer_object(stack.issuer), role).returncode == 0
    assert provision(stack, "plan", issuer_object(stack.issuer), role).returncode == 0
    assert annotation(stack, ns, "writer") == role_arn

    # deletion: the role and its policies go, our annotation goes, the ServiceAccount we created goes;
    # the user's ServiceAccount stays with everything else it had
    deleted = provision(stack, "delete", issuer_object(stack.issuer), role)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert name not in {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert annotation(stack, ns, "reader") is None
    reader = service_account(stack, ns, "reader")["metadata"]
    assert reader["labels"] == {"app": "reports"}
    assert reader["annotations"] == {"owner": "team-payments"}
    assert not stack.kube.exists(f"/api/v1/namespaces/{ns}/serviceaccounts/writer")


def test_a_role_that_is_not_ours_is_never_touched(stack: Stack) -> None:
    ns = namespace(stack, "legacy")
    iam = stack.iam()
    untouched = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    iam.create_role(RoleName="legacy-app", AssumeRolePolicyDocument=untouched)
    before = iam.get_role(RoleName="legacy-app")["Role"]
    role = role_object(ns, roleName="legacy-app")
    result = provision(stack, "apply", issuer_object(stack.issuer), role)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not ours" in result.stdout + result.stderr
    assert iam.get_role(RoleName="legacy-app")["Role"] == before
    assert provision(stack, "delete", issuer_object(stack.issuer), role).returncode == 0
    assert iam.get_role(RoleName="legacy-app")["Role"] == before


def test_the_controller_reconciles_both_kinds_and_cleans_up(stack: Stack, webhook: Server, tmp_path: Path) -> None:
    team_a, team_b = namespace(stack, "team-a"), namespace(stack, "team-b")
    stack.kube.create_service_account(team_a, "reader")  # bound without create: the user's to make
    with issuer_crd(stack.plane), role_crds(stack.plane):
        stack.kube.create(f"{GROUP}/irsaissuers", issuer_object(stack.issuer))
        stack.kube.create(f"{GROUP}/namespaces/{team_a}/irsaroles", role_object(team_a))
        shared: dict[str, Any] = {
            "apiVersion": "irsa-webhook.io/v1alpha1",
            "kind": "ClusterIRSARole",
            "metadata": {"name": f"shared-{os.getpid()}"},
            "spec": {
                "issuerRef": "main",
                "serviceAccounts": [{"namespace": team_a, "name": "shared", "create": True},
                                    {"namespace": team_b, "name": "shared", "create": True}],
            },
        }  # fmt: skip
        stack.kube.create(f"{GROUP}/clusterirsaroles", shared)
        env = stack.aws_env() | {"PYTHONPATH": str(REPO), "PATH": os.environ["PATH"]}
        controller = start_controller(stack, env, "--probe-service-account", "irsa-probe/probe")
        try:
            for path in (
                f"{GROUP}/namespaces/{team_a}/irsaroles/reader",
                f"{GROUP}/clusterirsaroles/{shared['metadata']['name']}",
            ):
                wait_for(partial(_ready, stack, path), timeout=SETTLE, what=f"{path} Ready",
                         on_timeout=controller.process.tail)  # fmt: skip
            for ns in (team_a, team_b):
                role_arn = annotation(stack, ns, "shared")
                assert role_arn is not None
                env, _ = credentials_through_a_pod(stack, ns, "shared-pod", tmp_path / ns, service_account="shared")
                assert caller_identity(env)["Arn"].startswith(assumed_role_arn_prefix(role_arn))
            # drift repaired by the resync
            reader_arn = annotation(stack, team_a, "reader") or pytest.fail("reader not annotated")
            stack.iam().detach_role_policy(RoleName=reader_arn.rsplit("/", 1)[-1], PolicyArn=READ_ONLY)
            wait_for(
                lambda: READ_ONLY in _attached(stack, reader_arn), timeout=SETTLE, what="the policy attached again",
                on_timeout=controller.process.tail,
            )  # fmt: skip
            # deletion through the finalizer
            stack.kube.delete(f"{GROUP}/namespaces/{team_a}/irsaroles/reader")
            stack.kube.delete(f"{GROUP}/clusterirsaroles/{shared['metadata']['name']}")
            wait_for(
                lambda: not stack.kube.exists(f"{GROUP}/namespaces/{team_a}/irsaroles/reader")
                and not stack.kube.exists(f"{GROUP}/clusterirsaroles/{shared['metadata']['name']}"),
                timeout=SETTLE, what="both objects gone", on_timeout=controller.process.tail,
            )  # fmt: skip
        finally:
            controller.process.stop()
    roles = {r["RoleName"] for r in stack.iam().list_roles()["Roles"]}
    assert reader_arn.rsplit("/", 1)[-1] not in roles
    for ns in (team_a, team_b):
        assert not stack.kube.exists(f"/api/v1/namespaces/{ns}/serviceaccounts/shared")


def _ready(stack: Stack, path: str) -> bool:
    return condition(stack.kube.get(path).get("status", {}), "Ready") == "True"


def _attached(stack: Stack, role_arn: str) -> list[str]:
    name = role_arn.rsplit("/", 1)[-1]
    return [p["PolicyArn"] for p in stack.iam().list_attached_role_policies(RoleName=name)["AttachedPolicies"]]


def test_a_tenant_gets_no_role_for_another_namespace_nor_a_policy_outside_the_allow_list(stack: Stack) -> None:
    """A tenant with RBAC on irsaroles in its own namespace only (the shipped tenant ClusterRole, bound
    there): neither object costs an AWS write, both say why, and the cluster-scoped kind is refused."""
    tenant_ns, victim_ns = namespace(stack, "tenant"), namespace(stack, "victim")
    stack.kube.create_service_account(victim_ns, "db-admin")
    stack.plane.kubectl("apply", "-f", str(REPO / "manifests/components/provisioner/tenant_cluster_role.yaml"))
    stack.plane.kubectl("-n", tenant_ns, "create", "rolebinding", "tenant", "--clusterrole=irsa-webhook-tenant",
                        "--user=tenant")  # fmt: skip
    allowed = f"arn:aws:iam::{ACCOUNT}:policy/tenant-*"
    stolen = role_object(tenant_ns, "steal", serviceAccounts=[{"namespace": victim_ns, "name": "db-admin"}])
    wider = role_object(tenant_ns, "wider", serviceAccounts=[{"name": "app", "create": True}])
    with issuer_crd(stack.plane), role_crds(stack.plane):
        stack.kube.create(f"{GROUP}/irsaissuers", issuer_object(stack.issuer))
        for obj in (stolen, wider):
            created = stack.plane.kubectl("--as=tenant", "apply", "-f", "-", input=json.dumps(obj), check=False)
            assert created.returncode == 0, created.stderr
        victim = [{"namespace": victim_ns, "name": "db-admin"}]
        cluster_wide = {
            "apiVersion": "irsa-webhook.io/v1alpha1",
            "kind": "ClusterIRSARole",
            "metadata": {"name": "x"},
            "spec": {"issuerRef": "main", "serviceAccounts": victim},
        }
        refused = stack.plane.kubectl("--as=tenant", "apply", "-f", "-", input=json.dumps(cluster_wide), check=False)
        assert refused.returncode != 0
        assert "forbidden" in refused.stderr.lower()
        mark = len(stack.recorder.calls)
        env = stack.aws_env() | {"PYTHONPATH": str(REPO), "PATH": os.environ["PATH"]}
        controller = start_controller(
            stack, env, "--probe-service-account", "irsa-probe/probe", "--allowed-policy-arn", allowed
        )
        try:
            for name, reason in (("steal", "InvalidSpec"), ("wider", "GuardrailViolation")):
                path = f"{GROUP}/namespaces/{tenant_ns}/irsaroles/{name}"
                wait_for(partial(_terminal, stack, path), timeout=SETTLE, what=f"{name} terminal",
                         on_timeout=controller.process.tail)  # fmt: skip
                assert stack.kube.get(path)["status"]["terminal"]["reason"] == reason
            # deleted while the controller runs: its finalizer goes (a refused object owns nothing)
            for name in ("steal", "wider"):
                stack.kube.delete(f"{GROUP}/namespaces/{tenant_ns}/irsaroles/{name}")
            wait_for(lambda: not stack.kube.exists(f"{GROUP}/namespaces/{tenant_ns}/irsaroles/steal")
                     and not stack.kube.exists(f"{GROUP}/namespaces/{tenant_ns}/irsaroles/wider"),
                     timeout=SETTLE, what="both refused objects gone", on_timeout=controller.process.tail)  # fmt: skip
        finally:
            controller.process.stop()
    iam_writes = [
        c for c in stack.recorder.calls[mark:] if c.service == "iam" and not c.operation.startswith(("Get", "List"))
    ]
    assert iam_writes == []
    assert annotation(stack, victim_ns, "db-admin") is None


def _terminal(stack: Stack, path: str) -> bool:
    return "terminal" in stack.kube.get(path).get("status", {})
