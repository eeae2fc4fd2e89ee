"""The stand-ins' policy evaluation follows AWS's documented rules (it judges what our code writes)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from tests.support.standins.policy import Request, UnsupportedPolicy, evaluate, load_policy, wildcard_match

PROVIDER = "arn:aws:iam::123456789012:oidc-provider/issuer.example/a"
HOST = "issuer.example/a"
ACTION = "sts:AssumeRoleWithWebIdentity"


def web_identity(**context: list[str]) -> Request:
    keys = {"sub": f"{HOST}:sub", "aud": f"{HOST}:aud", "amr": f"{HOST}:amr"}
    return Request("Federated", PROVIDER, ACTION, None, {keys.get(k, k).lower(): v for k, v in context.items()})


def trust(condition: dict[str, Any] | None = None, **statement: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": ACTION, **statement}
    if condition is not None:
        body["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [body]}


SA = "system:serviceaccount:default:app"
TOKEN = {"sub": [SA], "aud": ["sts.amazonaws.com"]}


@pytest.mark.parametrize(
    ("condition", "context", "allowed"),
    [
        pytest.param({"StringEquals": {f"{HOST}:sub": SA}}, TOKEN, True, id="equals"),
        pytest.param(
            {"StringEquals": {f"{HOST}:sub": "system:serviceaccount:default:other"}}, TOKEN, False, id="other-sa"
        ),
        pytest.param({"StringEquals": {f"{HOST}:SUB": SA}}, TOKEN, True, id="key-names-ignore-case"),
        pytest.param({"StringEquals": {f"{HOST}:sub": SA.upper()}}, TOKEN, False, id="values-do-not"),
        pytest.param({"StringEqualsIgnoreCase": {f"{HOST}:sub": SA.upper()}}, TOKEN, True, id="unless-asked"),
        pytest.param({"StringEquals": {f"{HOST}:sub": ["x", SA]}}, TOKEN, True, id="any-of-the-values"),
        pytest.param(
            {"StringEquals": {f"{HOST}:sub": SA, f"{HOST}:aud": "vault"}}, TOKEN, False, id="every-key-must-match"
        ),
        pytest.param(
            {"StringEquals": {f"{HOST}:sub": SA}, "StringLike": {f"{HOST}:aud": "sts.*"}},
            TOKEN,
            True,
            id="every-operator",
        ),
        pytest.param({"StringLike": {f"{HOST}:sub": "system:serviceaccount:default:*"}}, TOKEN, True, id="like"),
        pytest.param({"StringLike": {f"{HOST}:sub": "system:serviceaccount:*:ap?"}}, TOKEN, True, id="like-one-char"),
        pytest.param({"StringLike": {f"{HOST}:sub": "system:serviceaccount:kube-*"}}, TOKEN, False, id="like-no-match"),
        pytest.param(
            {"StringEquals": {f"{HOST}:sub": "system:serviceaccount:default:*"}},
            TOKEN,
            False,
            id="no-wildcards-in-equals",
        ),
        pytest.param({"StringNotEquals": {f"{HOST}:sub": SA}}, TOKEN, False, id="not-equals"),
        pytest.param({"StringNotEquals": {f"{HOST}:sub": ["a", "b"]}}, TOKEN, True, id="not-equals-none-of"),
        pytest.param({"StringNotEquals": {f"{HOST}:amr": "x"}}, TOKEN, True, id="negated-missing-key-matches"),
        pytest.param({"StringNotLike": {f"{HOST}:sub": "*:kube-system:*"}}, TOKEN, True, id="not-like"),
        pytest.param({"StringEquals": {f"{HOST}:amr": "x"}}, TOKEN, False, id="positive-missing-key-fails"),
        pytest.param({"StringEqualsIfExists": {f"{HOST}:amr": "x"}}, TOKEN, True, id="if-exists-missing"),
        pytest.param({"StringEqualsIfExists": {f"{HOST}:sub": "x"}}, TOKEN, False, id="if-exists-present"),
        pytest.param({"Null": {f"{HOST}:amr": "true"}}, TOKEN, True, id="null-true-missing"),
        pytest.param({"Null": {f"{HOST}:sub": "true"}}, TOKEN, False, id="null-true-present"),
        pytest.param({"Null": {f"{HOST}:sub": "false"}}, TOKEN, True, id="null-false-present"),
        pytest.param(
            {"ForAnyValue:StringEquals": {f"{HOST}:amr": "mfa"}}, {**TOKEN, "amr": ["pwd", "mfa"]}, True, id="any-value"
        ),
        pytest.param({"ForAnyValue:StringEquals": {f"{HOST}:amr": "mfa"}}, TOKEN, False, id="any-value-missing"),
        pytest.param(
            {"ForAllValues:StringEquals": {f"{HOST}:amr": ["pwd", "mfa"]}},
            {**TOKEN, "amr": ["pwd", "otp"]},
            False,
            id="all-values",
        ),
        pytest.param(
            {"ForAllValues:StringEquals": {f"{HOST}:amr": ["pwd", "mfa"]}},
            {**TOKEN, "amr": ["pwd"]},
            True,
            id="all-values-subset",
        ),
        pytest.param({"ForAllValues:StringEquals": {f"{HOST}:amr": "mfa"}}, TOKEN, True, id="all-values-missing"),
        pytest.param(
            {"ForAnyValue:StringNotEquals": {f"{HOST}:amr": "pwd"}},
            {**TOKEN, "amr": ["pwd", "mfa"]},
            True,
            id="any-value-not",
        ),
        pytest.param(
            {"StringNotEquals": {f"{HOST}:amr": "pwd"}}, {**TOKEN, "amr": ["pwd", "mfa"]}, False, id="not-equals-multi"
        ),
        pytest.param(
            {"ArnLike": {"aws:FederatedProvider": "arn:aws:iam::*:oidc-provider/issuer.example/*"}},
            {**TOKEN, "aws:FederatedProvider": [PROVIDER]},
            True,
            id="arn-like",
        ),
        pytest.param(
            {"ArnLike": {"aws:FederatedProvider": "arn:aws:iam::*"}},
            {**TOKEN, "aws:FederatedProvider": [PROVIDER]},
            False,
            id="arn-like-part-by-part",
        ),
        pytest.param({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": ["true"]}, True, id="bool"),
    ],
)
def test_conditions(condition: dict[str, Any], context: dict[str, list[str]], allowed: bool) -> None:
    assert evaluate(trust(condition), web_identity(**context)).allowed is allowed


@pytest.mark.parametrize(
    ("statement", "allowed"),
    [
        pytest.param({}, True, id="as-written"),
        pytest.param({"Principal": "*"}, True, id="everyone"),
        pytest.param({"Principal": {"AWS": "*"}}, True, id="aws-star-is-everyone"),
        pytest.param({"Principal": {"Federated": [PROVIDER + "x", PROVIDER]}}, True, id="one-of-a-list"),
        pytest.param({"Principal": {"Federated": PROVIDER + "x"}}, False, id="another-provider"),
        pytest.param({"Principal": {"AWS": PROVIDER}}, False, id="another-principal-type"),
        pytest.param({"Action": "sts:AssumeRole*"}, True, id="action-wildcard"),
        pytest.param({"Action": "STS:assumerolewithwebidentity"}, True, id="action-any-case"),
        pytest.param({"Action": ["sts:AssumeRole", "sts:TagSession"]}, False, id="other-actions"),
    ],
)
def test_principals_and_actions(statement: dict[str, Any], allowed: bool) -> None:
    assert evaluate(trust(**statement), web_identity(**TOKEN)).allowed is allowed


def test_not_action_excludes() -> None:
    policy = trust()
    del policy["Statement"][0]["Action"]
    policy["Statement"][0]["NotAction"] = "sts:AssumeRole"
    assert evaluate(policy, web_identity(**TOKEN)).allowed is True
    policy["Statement"][0]["NotAction"] = "sts:*"
    assert evaluate(policy, web_identity(**TOKEN)).allowed is False


def test_deny_wins_and_nothing_is_an_implicit_deny() -> None:
    policy = trust()
    policy["Statement"].append({**policy["Statement"][0], "Effect": "Deny", "Sid": "NoApp"})
    verdict = evaluate(policy, web_identity(**TOKEN))
    assert (verdict.allowed, verdict.reason) == (False, "explicitly denied by statement NoApp")
    assert evaluate({"Statement": []}, web_identity(**TOKEN)).reason == "no statement allows it"


def test_a_single_statement_object_is_a_statement() -> None:
    policy = trust()
    policy["Statement"] = policy["Statement"][0]
    assert evaluate(policy, web_identity(**TOKEN)).allowed is True


def test_resources_match_case_sensitively_with_wildcards() -> None:
    request = Request("Anonymous", "*", "s3:GetObject", "arn:aws:s3:::b/p/keys.json")
    for resource, allowed in [
        ("arn:aws:s3:::b/*", True),
        ("arn:aws:s3:::B/*", False),
        ("arn:aws:s3:::b/p/?eys.json", True),
    ]:
        policy = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": resource}]}
        assert evaluate(policy, request).allowed is allowed, resource
    not_resource = {
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "NotResource": "arn:aws:s3:::b/*"}]
    }
    assert evaluate(not_resource, request).allowed is False


def test_policies_load_as_iam_returns_them() -> None:
    document = trust({"StringEquals": {f"{HOST}:sub": SA}})
    text = json.dumps(document)
    assert load_policy(text) == load_policy(urllib.parse.quote(text)) == load_policy(document) == document


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param({"NotPrincipal": {"AWS": "x"}, "Principal": None}, id="not-principal"),
        pytest.param({"Condition": {"NumericLessThan": {f"{HOST}:sub": "3"}}}, id="numeric"),
        pytest.param({"Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}, id="ip"),
        pytest.param({"Condition": {"StringEquals": {f"{HOST}:sub": "${aws:username}"}}}, id="policy-variable"),
        pytest.param({"Effect": "Maybe"}, id="effect"),
    ],
)
def test_what_it_cannot_evaluate_raises_instead_of_guessing(statement: dict[str, Any]) -> None:
    policy = trust()
    policy["Statement"][0].update(statement)
    policy["Statement"][0] = {k: v for k, v in policy["Statement"][0].items() if v is not None}
    with pytest.raises(UnsupportedPolicy):
        evaluate(policy, web_identity(**TOKEN))


def test_a_star_matches_across_slashes_and_colons() -> None:
    assert wildcard_match("arn:aws:s3:::b/*", "arn:aws:s3:::b/a/b/c")
    assert wildcard_match("*", "")
    assert not wildcard_match("a?c", "ac")
