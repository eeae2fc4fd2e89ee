"""Trust policy evaluation: which statement applies, and the allow/deny combination."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from webhook.oidc.errors import InputError
from webhook.oidc.policy import parse
from webhook.oidc.policycheck import WebIdentityRequest, decide

ISSUER = "https://oidc.example.com/cluster1"
PROVIDER = "oidc.example.com/cluster1"
ARN = f"arn:aws:iam::111122223333:oidc-provider/{PROVIDER}"
ME = "system:serviceaccount:app:api"
REQUEST = WebIdentityRequest(ISSUER, ME, ("sts.amazonaws.com",))

GOOD: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Federated": ARN},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {f"{PROVIDER}:sub": ME, f"{PROVIDER}:aud": "sts.amazonaws.com"}},
        }
    ],
}


def _with(**changes: Any) -> dict[str, Any]:
    """GOOD with fields of its first statement replaced (None removes the field)."""
    policy = copy.deepcopy(GOOD)
    for field, value in changes.items():
        if value is None:
            policy["Statement"][0].pop(field)
        else:
            policy["Statement"][0][field] = value
    return policy


def _plus(statement: dict[str, Any]) -> dict[str, Any]:
    policy = copy.deepcopy(GOOD)
    policy["Statement"].append(statement)
    return policy


DENY_ALL = {"Effect": "Deny", "Principal": "*", "Action": "sts:*"}


@pytest.mark.parametrize(
    ("policy", "request_", "allowed", "reason"),
    [
        pytest.param(GOOD, REQUEST, True, "allowed by statement 0", id="allowed"),
        pytest.param(
            GOOD,
            WebIdentityRequest(ISSUER, "system:serviceaccount:other:api", ("sts.amazonaws.com",)),
            False,
            "implicitly denied",
            id="same-name-other-namespace",
        ),
        pytest.param(GOOD, WebIdentityRequest(ISSUER, ME, ("other",)), False, "implicitly denied", id="wrong-audience"),
        pytest.param(GOOD, WebIdentityRequest(ISSUER, ME, ()), False, "implicitly denied", id="no-audience"),
        pytest.param(
            GOOD,
            WebIdentityRequest("https://other.example.com", ME, ("sts.amazonaws.com",)),
            False,
            "implicitly denied",
            id="other-issuer",
        ),
        pytest.param(
            {"Statement": [{**GOOD["Statement"][0], "Action": "sts:AssumeRole"}, GOOD["Statement"][0]]},
            REQUEST,
            True,
            "allowed by statement 1",
            id="second-statement-allows",
        ),
        pytest.param(
            {"Statement": GOOD["Statement"][0]},
            REQUEST,
            True,
            "allowed by statement 0",
            id="statement-object",
        ),
        # Action / NotAction, with wildcards, case-insensitive.
        pytest.param(_with(Action="sts:*"), REQUEST, True, "allowed", id="action-sts-star"),
        pytest.param(_with(Action="*"), REQUEST, True, "allowed", id="action-star"),
        pytest.param(_with(Action="STS:assumerolewithwebidentity"), REQUEST, True, "allowed", id="action-case"),
        pytest.param(_with(Action="sts:AssumeRole?ithWebIdentity"), REQUEST, True, "allowed", id="action-question"),
        pytest.param(_with(Action="sts:AssumeRole"), REQUEST, False, "implicitly", id="action-other"),
        pytest.param(_with(Action=["sts:TagSession", "sts:AssumeRole*"]), REQUEST, True, "allowed", id="action-list"),
        pytest.param(_with(Action=None, NotAction="sts:AssumeRole"), REQUEST, True, "allowed", id="not-action-other"),
        pytest.param(_with(Action=None, NotAction="sts:*"), REQUEST, False, "implicitly", id="not-action-hit"),
        # Principal.
        pytest.param(_with(Principal="*"), REQUEST, True, "allowed", id="principal-star"),
        pytest.param(_with(Principal={"AWS": "*"}), REQUEST, True, "allowed", id="principal-aws-star"),
        pytest.param(
            _with(Principal={"Federated": ["arn:aws:iam::111122223333:oidc-provider/x.example.com", ARN]}),
            REQUEST,
            True,
            "allowed",
            id="principal-list",
        ),
        pytest.param(
            _with(Principal={"Federated": f"arn:aws-cn:iam::999999999999:oidc-provider/{PROVIDER}"}),
            REQUEST,
            True,
            "allowed",
            id="principal-any-account-partition",
        ),
        pytest.param(
            _with(Principal={"Federated": f"arn:aws:iam::111122223333:oidc-provider/https://{PROVIDER}"}),
            REQUEST,
            False,
            "implicitly",
            id="principal-with-https",
        ),
        pytest.param(
            _with(Principal={"Federated": "cognito-identity.amazonaws.com"}),
            REQUEST,
            False,
            "implicitly",
            id="principal-cognito",
        ),
        pytest.param(_with(Principal={"AWS": ARN}), REQUEST, False, "implicitly", id="principal-aws-role"),
        pytest.param(
            _with(Principal=None, NotPrincipal={"AWS": "arn:aws:iam::111122223333:root"}),
            REQUEST,
            True,
            "allowed",
            id="not-principal-other",
        ),
        # Conditions.
        pytest.param(_with(Condition=None), REQUEST, True, "allowed", id="no-condition"),
        pytest.param(
            _with(Condition={"StringEquals": {f"https://{PROVIDER}:sub": ME}}),
            REQUEST,
            False,
            "implicitly",
            id="https-key-never-matches",
        ),
        pytest.param(
            _with(Condition={"StringLike": {f"{PROVIDER}:sub": "system:serviceaccount:app:*"}}),
            REQUEST,
            True,
            "allowed",
            id="like-namespace",
        ),
        pytest.param(
            _with(
                Condition={
                    "StringEquals": {f"{PROVIDER}:aud": "sts.amazonaws.com"},
                    "StringNotEquals": {f"{PROVIDER}:sub": ME},
                }
            ),
            REQUEST,
            False,
            "implicitly",
            id="operators-anded",
        ),
        # Deny wins; order does not matter.
        pytest.param(_plus(DENY_ALL), REQUEST, False, "explicitly denied by statement 1", id="deny-wins"),
        pytest.param(
            {"Statement": [DENY_ALL, GOOD["Statement"][0]]},
            REQUEST,
            False,
            "explicitly denied",
            id="deny-first",
        ),
        pytest.param(
            _plus(
                {
                    "Sid": "NoKubeSystem",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringLike": {f"{PROVIDER}:sub": "system:serviceaccount:kube-system:*"}},
                }
            ),
            REQUEST,
            True,
            "allowed by statement 0",
            id="deny-not-applying",
        ),
        pytest.param(
            {"Statement": [{**GOOD["Statement"][0], "Effect": "Deny"}]},
            REQUEST,
            False,
            "explicitly denied by statement 0",
            id="only-deny",
        ),
    ],
)
def test_decide(policy: dict[str, Any], request_: WebIdentityRequest, allowed: bool, reason: str) -> None:
    decision = decide(parse(policy), request_)
    assert decision.allowed is allowed
    assert reason in decision.reason


def test_reasons_name_the_failing_condition_and_the_request_value() -> None:
    other = WebIdentityRequest(ISSUER, "system:serviceaccount:other:api", ("sts.amazonaws.com",))
    (result,) = decide(parse(GOOD), other).results
    assert not result.applies
    assert f'StringEquals {PROVIDER}:sub = "{ME}" is false' in result.reason
    assert "'system:serviceaccount:other:api'" in result.reason


def test_reason_for_a_missing_key() -> None:
    (result,) = decide(parse(GOOD), WebIdentityRequest(ISSUER, ME, ())).results
    assert "absent from the request" in result.reason


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        pytest.param([], "is not a JSON object", id="not-object"),
        pytest.param({}, "has no Statement", id="no-statement"),
        pytest.param({"Statement": []}, "empty Statement", id="empty-statement"),
        pytest.param({"Statement": ["x"]}, "statement 0 is not a JSON object", id="statement-not-object"),
        pytest.param(_with(Effect="allow"), 'Effect must be "Allow" or "Deny"', id="effect-case"),
        pytest.param(_with(Action=None), "neither Action nor NotAction", id="no-action"),
        pytest.param(_with(NotAction="sts:*"), "both Action and NotAction", id="both-actions"),
        pytest.param(_with(Principal=None), "neither Principal nor NotPrincipal", id="no-principal"),
        pytest.param(_with(Principal="arn:aws:iam::1:root"), "Principal must be", id="principal-string"),
        pytest.param(_with(Principal={"Federal": ARN}), "unknown principal type", id="principal-typo"),
        pytest.param(_with(Condition=["x"]), "Condition must be a JSON object", id="condition-list"),
        pytest.param(_with(Condition={"StringEquals": "x"}), "must map condition keys", id="condition-block"),
        pytest.param(
            _with(Condition={"StringEquals": {"k": {"a": 1}}}),
            "expected a string",
            id="condition-value-object",
        ),
        pytest.param(_with(Condition={"StringEquals": {"k": []}}), "empty list", id="condition-empty-list"),
    ],
)
def test_malformed_policy(policy: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse(policy)


def test_json_booleans_and_numbers_become_strings() -> None:
    policy = _with(Condition={"Null": {f"{PROVIDER}:aud": False}, "StringEquals": {f"{PROVIDER}:sub": ME}})
    assert decide(parse(policy), REQUEST).allowed
