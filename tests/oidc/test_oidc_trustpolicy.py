"""Trust policy generation, and that every generated policy passes its own check."""

from __future__ import annotations

import re

import pytest

from webhook.oidc.errors import InputError
from webhook.oidc.policy import parse
from webhook.oidc.policycheck import WebIdentityRequest, decide
from webhook.oidc.policylint import lint
from webhook.oidc.trustpolicy import (
    ServiceAccountRef,
    check_provider_matches,
    parse_service_accounts,
    provider_arn,
    trust_policy,
)

ISSUER = "https://oidc.example.com/cluster1"
PROVIDER = "oidc.example.com/cluster1"
ARN = f"arn:aws:iam::111122223333:oidc-provider/{PROVIDER}"


def test_single_service_account_policy_is_exactly_the_documented_shape() -> None:
    refs = parse_service_accounts(["api"], "app")
    assert trust_policy(ISSUER, ARN, refs) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": ARN},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{PROVIDER}:sub": "system:serviceaccount:app:api",
                        f"{PROVIDER}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


@pytest.mark.parametrize(
    ("values", "namespace", "expected"),
    [
        pytest.param(["api"], "app", [("app", "api")], id="name-with-namespace"),
        pytest.param(["app:api"], None, [("app", "api")], id="ns-colon-name"),
        pytest.param(["api", "batch:worker"], "app", [("app", "api"), ("batch", "worker")], id="mixed"),
        pytest.param(["api", "app:api"], "app", [("app", "api")], id="duplicates-dropped"),
        pytest.param(["my.sa-1"], "ns-2", [("ns-2", "my.sa-1")], id="dots-and-dashes"),
    ],
)
def test_parse_service_accounts(values: list[str], namespace: str | None, expected: list[tuple[str, str]]) -> None:
    assert parse_service_accounts(values, namespace) == [ServiceAccountRef(ns, name) for ns, name in expected]


@pytest.mark.parametrize(
    ("values", "namespace", "wildcard", "message"),
    [
        pytest.param([], "app", False, "at least one --service-account", id="none"),
        pytest.param(["api"], None, False, "has no namespace: add --namespace NS or write NS:api", id="no-namespace"),
        pytest.param(["a:b:c"], None, False, "exactly one ':'", id="two-colons"),
        pytest.param(["API"], "app", False, "not a valid Kubernetes name", id="uppercase-name"),
        pytest.param(["api"], "App", False, "not a valid Kubernetes namespace", id="uppercase-namespace"),
        pytest.param(["api"], "team-*", False, "pass --namespace-wildcard", id="wildcard-without-flag"),
        pytest.param(["api*"], "app", True, "wildcards are not allowed in names", id="wildcard-in-name"),
        pytest.param([":api"], None, False, "not a valid Kubernetes namespace", id="empty-namespace"),
        pytest.param(["app:"], None, False, "not a valid Kubernetes name", id="empty-name"),
    ],
)
def test_parse_service_accounts_errors(values: list[str], namespace: str | None, wildcard: bool, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_service_accounts(values, namespace, wildcard)


def test_several_service_accounts_are_one_ored_sub_list() -> None:
    refs = parse_service_accounts(["app:api", "app:worker"], None)
    condition = trust_policy(ISSUER, ARN, refs)["Statement"][0]["Condition"]
    assert condition["StringEquals"][f"{PROVIDER}:sub"] == [
        "system:serviceaccount:app:api",
        "system:serviceaccount:app:worker",
    ]


def test_namespace_wildcard_moves_all_subjects_to_stringlike() -> None:
    refs = parse_service_accounts(["team-*:api", "app:api"], None, allow_namespace_wildcard=True)
    condition = trust_policy(ISSUER, ARN, refs)["Statement"][0]["Condition"]
    assert condition == {
        "StringEquals": {f"{PROVIDER}:aud": "sts.amazonaws.com"},
        "StringLike": {f"{PROVIDER}:sub": ["system:serviceaccount:team-*:api", "system:serviceaccount:app:api"]},
    }


def test_several_audiences() -> None:
    refs = parse_service_accounts(["api"], "app")
    condition = trust_policy(ISSUER, ARN, refs, ["a", "b", "a"])["Statement"][0]["Condition"]
    assert condition["StringEquals"][f"{PROVIDER}:aud"] == ["a", "b"]


@pytest.mark.parametrize(
    ("issuer", "account", "partition", "expected"),
    [
        pytest.param(ISSUER, "111122223333", "aws", ARN, id="aws"),
        pytest.param(
            "https://x.example.com",
            "111122223333",
            "aws-us-gov",
            "arn:aws-us-gov:iam::111122223333:oidc-provider/x.example.com",
            id="gov",
        ),
        pytest.param(
            "https://127.0.0.1:6443",
            "111122223333",
            "aws",
            "arn:aws:iam::111122223333:oidc-provider/127.0.0.1:6443",
            id="port-kept",
        ),
    ],
)
def test_provider_arn(issuer: str, account: str, partition: str, expected: str) -> None:
    assert provider_arn(issuer, account, partition) == expected


@pytest.mark.parametrize(
    ("account", "partition", "message"),
    [
        pytest.param("11112222333", "aws", "must be 12 digits", id="short-account"),
        pytest.param("1111-2222-3333", "aws", "must be 12 digits", id="dashes"),
        pytest.param("".join(chr(0xFF11) for _ in range(12)), "aws", "must be 12 digits", id="fullwidth-digits"),
        pytest.param("111122223333", "gcp", "not an AWS partition", id="partition"),
    ],
)
def test_provider_arn_errors(account: str, partition: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        provider_arn(ISSUER, account, partition)


def test_provider_arn_must_name_the_issuer() -> None:
    check_provider_matches(ARN, ISSUER)
    with pytest.raises(InputError, match=re.escape("names provider 'other.example.com' but the issuer is")):
        check_provider_matches("arn:aws:iam::111122223333:oidc-provider/other.example.com", ISSUER)
    with pytest.raises(InputError, match="is not an OIDC provider ARN"):
        check_provider_matches("arn:aws:iam::111122223333:role/x", ISSUER)


@pytest.mark.parametrize(
    ("values", "wildcard", "allowed_subjects", "denied_subjects", "lint_codes"),
    [
        pytest.param(["app:api"], False, ["app:api"], ["other:api", "app:api2", "app:ap"], [], id="one"),
        pytest.param(
            ["app:api", "app:worker"],
            False,
            ["app:api", "app:worker"],
            ["other:api"],
            [],
            id="two-same-namespace",
        ),
        pytest.param(
            ["app:api", "batch:api"],
            False,
            ["app:api", "batch:api"],
            ["other:api"],
            ["shared-across-namespaces"],
            id="two-namespaces",
        ),
        pytest.param(
            ["team-*:api"],
            True,
            ["team-a:api", "team-bc:api"],
            ["team:api", "app:api", "team-a:worker"],
            ["wildcard-sub", "shared-across-namespaces"],
            id="namespace-wildcard",
        ),
    ],
)
def test_generated_policies_pass_their_own_check(
    values: list[str],
    wildcard: bool,
    allowed_subjects: list[str],
    denied_subjects: list[str],
    lint_codes: list[str],
) -> None:
    refs = parse_service_accounts(values, None, wildcard)
    statements = parse(trust_policy(ISSUER, ARN, refs))
    for subject in allowed_subjects:
        request = WebIdentityRequest(ISSUER, f"system:serviceaccount:{subject}", ("sts.amazonaws.com",))
        assert decide(statements, request).allowed, subject
    for subject in denied_subjects:
        request = WebIdentityRequest(ISSUER, f"system:serviceaccount:{subject}", ("sts.amazonaws.com",))
        assert not decide(statements, request).allowed, subject
    wrong_audience = WebIdentityRequest(ISSUER, f"system:serviceaccount:{allowed_subjects[0]}", ("other",))
    assert not decide(statements, wrong_audience).allowed
    assert sorted(f.code for f in lint(statements)) == sorted(lint_codes)
