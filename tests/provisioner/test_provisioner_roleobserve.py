"""The role observer (``webhook.provisioner.roleobserve``) against moto's server: a role set up with
plain boto3 calls read back whole (trust policy decoded, boundary, tags, managed and inline policies),
every list followed page by page, reads only; the provider check; the ServiceAccount as a role sees
it (fake API server); and what an IRSAIssuer's status offers a role."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.handlers import json_decode_policies

from tests.support.awserrors import error_endpoint, query_error
from tests.support.awsstate import (
    ROLE_ISSUER,
    ROLE_PROVIDER,
    make_policy,
    permission_policy,
    raw_iam,
    role_trust_policy,
)
from tests.support.kubeapi import FakeApiServer, FakeCluster, service_account
from tests.support.moto import ACCOUNT, MotoServer, point_at
from webhook.aws.errors import AwsError
from webhook.aws.session import AwsClients
from webhook.kube.serviceaccountwrites import apply_annotations, create_service_account
from webhook.provisioner import roleobserve
from webhook.provisioner.documents import same_policy
from webhook.provisioner.rolemodel import (
    CREATED_BY_ANNOTATION,
    FIELD_MANAGER,
    IssuerFacts,
    ObservedRole,
    ObservedServiceAccount,
)
from webhook.provisioner.roleobserve import (
    issuer_facts_from_status,
    observe_role,
    observe_service_account,
    provider_exists,
)

ROLE = "production-app"
KEY = "eks.amazonaws.com/role-arn"
ARN = f"arn:aws:iam::{ACCOUNT}:role/irsa/{ROLE}"


def make_role(**extra: Any) -> None:
    raw_iam().create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(role_trust_policy()), **extra)


def test_no_such_role(moto: MotoServer) -> None:
    aws = AwsClients()
    assert observe_role(ROLE, aws) is None
    assert aws.tally.calls() == {"iam:GetRole": 1}


def test_a_bare_role(moto: MotoServer) -> None:
    make_role()
    observed = observe_role(ROLE, AwsClients())
    assert observed == ObservedRole(
        arn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE}",
        path="/",
        trust_policy=role_trust_policy(),
        max_session_duration=3600,
        permissions_boundary=None,
        tags={},
        managed_policy_arns=(),
        inline_policies={},
    )


def test_everything_a_role_carries_read_with_reads_only(moto: MotoServer) -> None:
    boundary, reader = make_policy("boundary"), make_policy("reader")
    make_role(
        Path="/irsa/",
        MaxSessionDuration=7200,
        PermissionsBoundary=boundary,
        Tags=[{"Key": "irsa-webhook.io/owner", "Value": "c/irsarole/production/app"}, {"Key": "team", "Value": "a"}],
    )
    iam = raw_iam()
    iam.attach_role_policy(RoleName=ROLE, PolicyArn=reader)
    iam.put_role_policy(RoleName=ROLE, PolicyName="read-config", PolicyDocument=json.dumps(permission_policy()))
    aws = AwsClients()
    observed = observe_role(ROLE, aws)
    assert observed == ObservedRole(
        arn=ARN,
        path="/irsa/",
        trust_policy=role_trust_policy(),
        max_session_duration=7200,
        permissions_boundary=boundary,
        tags={"irsa-webhook.io/owner": "c/irsarole/production/app", "team": "a"},
        managed_policy_arns=(reader,),
        inline_policies={"read-config": permission_policy()},
    )
    assert aws.tally.writes() == {}
    assert aws.tally.calls() == {
        "iam:GetRole": 1,
        "iam:ListRoleTags": 1,
        "iam:ListAttachedRolePolicies": 1,
        "iam:ListRolePolicies": 1,
        "iam:GetRolePolicy": 1,
    }


def test_every_list_is_followed_to_its_last_page(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # IAM may end a page early: one item per page makes every list need all its pages.
    monkeypatch.setattr(roleobserve, "PAGE_SIZE", 1)
    make_role(Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(3)])
    iam = raw_iam()
    arns = [make_policy(f"p{i}") for i in range(2)]
    for arn in arns:
        iam.attach_role_policy(RoleName=ROLE, PolicyArn=arn)
    for i in range(3):
        iam.put_role_policy(RoleName=ROLE, PolicyName=f"inline-{i}", PolicyDocument=json.dumps(permission_policy()))
    aws = AwsClients()
    observed = observe_role(ROLE, aws)
    assert observed is not None
    assert observed.tags == {"k0": "v", "k1": "v", "k2": "v"}
    assert sorted(observed.managed_policy_arns) == sorted(arns)
    assert sorted(observed.inline_policies) == ["inline-0", "inline-1", "inline-2"]
    calls = aws.tally.calls()
    assert all(calls[f"iam:{name}"] > 1 for name in ("ListRoleTags", "ListAttachedRolePolicies", "ListRolePolicies"))


def test_documents_in_iams_own_encoding_are_decoded(moto: MotoServer) -> None:
    # IAM sends policy documents URL-encoded; botocore decodes them, and where it does not (here it is
    # told not to), the observer does.
    make_role()
    raw_iam().put_role_policy(RoleName=ROLE, PolicyName="p", PolicyDocument=json.dumps(permission_policy("s3:*")))
    aws = AwsClients()
    aws.iam.meta.events.unregister("after-call.iam", json_decode_policies)
    assert isinstance(aws.iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"], str)
    observed = observe_role(ROLE, aws)
    assert observed is not None
    assert same_policy(observed.trust_policy, role_trust_policy())
    assert observed.trust_policy == role_trust_policy()
    assert observed.inline_policies == {"p": permission_policy("s3:*")}


def test_a_failure_other_than_absence_is_raised_classified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with error_endpoint(403, query_error("AccessDenied", "not authorized to perform iam:GetRole")) as endpoint:
        point_at(monkeypatch, endpoint.url, tmp_path)
        aws = AwsClients(max_attempts=1)
        with pytest.raises(AwsError) as role:
            observe_role(ROLE, aws)
        with pytest.raises(AwsError) as provider:
            provider_exists(ROLE_PROVIDER, aws)
    assert (role.value.kind, role.value.action) == ("access-denied", "iam:GetRole")
    assert f"iam:GetRole for {ROLE}" in role.value.message
    assert (provider.value.kind, provider.value.action) == ("access-denied", "iam:GetOpenIDConnectProvider")


def test_provider_exists(moto: MotoServer) -> None:
    aws = AwsClients()
    assert provider_exists(ROLE_PROVIDER, aws) is False
    raw_iam().create_open_id_connect_provider(Url=ROLE_ISSUER, ClientIDList=["sts.amazonaws.com"])
    assert provider_exists(ROLE_PROVIDER, aws) is True
    assert aws.tally.writes() == {}


# --- ServiceAccounts ----------------------------------------------------------------------------------


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[Any]:
    cluster = FakeCluster(service_accounts=[service_account("production", "theirs", ARN, uid="uid-theirs")])
    with FakeApiServer(cluster) as server:
        yield server.api_client(tmp_path)


def test_a_service_account_as_a_role_sees_it(kube_api: Any) -> None:
    assert observe_service_account(kube_api, "production", "absent", KEY) == ObservedServiceAccount(
        "production", "absent", exists=False
    )
    # Annotated with our ARN by someone else: the value is there, the annotation is not ours.
    assert observe_service_account(kube_api, "production", "theirs", KEY) == ObservedServiceAccount(
        "production", "theirs", exists=True, annotations={KEY: ARN}, annotation_managed_by_us=False
    )
    create_service_account(kube_api, "production", "app", {CREATED_BY_ANNOTATION: "owner"}, FIELD_MANAGER)
    apply_annotations(kube_api, "production", "app", {KEY: ARN}, FIELD_MANAGER)
    assert observe_service_account(kube_api, "production", "app", KEY) == ObservedServiceAccount(
        "production",
        "app",
        exists=True,
        annotations={CREATED_BY_ANNOTATION: "owner", KEY: ARN},
        annotation_managed_by_us=True,
        created_by="owner",
    )


# --- the issuer -----------------------------------------------------------------------------------------


def issuer(
    ready: str | None = "True",
    *,
    generation: int = 2,
    observed: int = 2,
    url: str | None = ROLE_ISSUER,
    arn: str | None = ROLE_PROVIDER,
    deleting: bool = False,
) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": observed}
    if url:
        status["issuerURL"] = url
    if arn:
        status["providerARN"] = arn
    if ready is not None:
        status["conditions"] = [
            {"type": "Published", "status": "True"},
            {"type": "Ready", "status": ready, "reason": "KeysNotInSync", "message": "publishing the new key"},
        ]
    meta: dict[str, Any] = {"name": "main", "generation": generation}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "irsa-webhook.io/v1alpha1", "kind": "IRSAIssuer", "metadata": meta, "status": status}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(issuer(), IssuerFacts(True, ROLE_ISSUER, ROLE_PROVIDER), id="ready"),
        pytest.param(
            None,
            IssuerFacts(
                False,
                None,
                None,
                "IRSAIssuer main does not exist: create it, or name an existing one in spec.issuerRef",
            ),
            id="missing",
        ),
        pytest.param(
            issuer("False"),
            IssuerFacts(
                False,
                ROLE_ISSUER,
                ROLE_PROVIDER,
                "IRSAIssuer main is not Ready (KeysNotInSync: publishing the new key)",
            ),
            id="not-ready",
        ),
        pytest.param(
            issuer(None, url=None, arn=None),
            IssuerFacts(
                False,
                None,
                None,
                "IRSAIssuer main has no Ready condition yet: is the provisioner's controller running?",
            ),
            id="no-status-yet",
        ),
        pytest.param(
            issuer(generation=3),
            IssuerFacts(
                False,
                ROLE_ISSUER,
                ROLE_PROVIDER,
                "IRSAIssuer main has changed since its status was written: waiting for it to be reconciled",
            ),
            id="stale-status",
        ),
        pytest.param(
            issuer(arn=None),
            IssuerFacts(
                False, ROLE_ISSUER, None, "IRSAIssuer main is Ready but its status names no issuerURL or providerARN"
            ),
            id="no-provider",
        ),
        pytest.param(
            issuer(deleting=True),
            IssuerFacts(False, ROLE_ISSUER, ROLE_PROVIDER, "IRSAIssuer main is being deleted"),
            id="deleting",
        ),
    ],
)
def test_issuer_facts_from_its_status(obj: dict[str, Any] | None, expected: IssuerFacts) -> None:
    assert issuer_facts_from_status(obj, "main") == expected
