"""Trust policy lints: one row per finding, and clean policies that must stay clean."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.oidc.policy import parse
from webhook.oidc.policylint import lint

PROVIDER = "oidc.example.com/cluster1"
ARN = f"arn:aws:iam::111122223333:oidc-provider/{PROVIDER}"
SUB, AUD = f"{PROVIDER}:sub", f"{PROVIDER}:aud"
ME = "system:serviceaccount:app:api"


def _policy(
    condition: dict[str, Any] | None,
    effect: str = "Allow",
    action: str = "sts:AssumeRoleWithWebIdentity",
    principal: object = None,
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": effect,
        "Principal": principal if principal is not None else {"Federated": ARN},
        "Action": action,
    }
    if condition is not None:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


CLEAN = {"StringEquals": {SUB: ME, AUD: "sts.amazonaws.com"}}


@pytest.mark.parametrize(
    ("policy", "codes"),
    [
        pytest.param(_policy(CLEAN), [], id="clean"),
        pytest.param(
            _policy({"StringEquals": {SUB: [ME, "system:serviceaccount:app:worker"], AUD: "sts.amazonaws.com"}}),
            [],
            id="clean-two-sas-one-namespace",
        ),
        pytest.param(_policy({"StringEquals": {SUB: ME}}), ["missing-aud"], id="missing-aud"),
        pytest.param(
            _policy({"StringEquals": {SUB: ME}, "StringNotEquals": {AUD: "x"}}),
            ["missing-aud"],
            id="negated-aud-is-not-a-restriction",
        ),
        pytest.param(_policy({"StringEquals": {AUD: "sts.amazonaws.com"}}), ["missing-sub"], id="missing-sub"),
        pytest.param(_policy(None), ["missing-aud", "missing-sub"], id="no-condition"),
        pytest.param(
            _policy(
                {
                    "StringEquals": {AUD: "sts.amazonaws.com"},
                    "StringLike": {SUB: "system:serviceaccount:app:*"},
                }
            ),
            ["wildcard-sub"],
            id="wildcard-sub-name",
        ),
        pytest.param(
            _policy(
                {
                    "StringEquals": {AUD: "sts.amazonaws.com"},
                    "StringLike": {SUB: "system:serviceaccount:*:api"},
                }
            ),
            ["wildcard-sub", "shared-across-namespaces"],
            id="wildcard-namespace",
        ),
        pytest.param(
            _policy({"StringEquals": {AUD: "sts.amazonaws.com"}, "StringLike": {SUB: ME}}),
            [],
            id="stringlike-without-wildcard",
        ),
        pytest.param(
            _policy(
                {
                    "StringEquals": {AUD: "sts.amazonaws.com"},
                    "StringLike": {SUB: "system:serviceaccount:app:a${*}"},
                }
            ),
            [],
            id="escaped-star-is-no-wildcard",
        ),
        pytest.param(
            _policy({"StringEquals": {f"https://{SUB}": ME, f"https://{AUD}": "sts.amazonaws.com"}}),
            ["https-in-key", "https-in-key"],
            id="https-in-keys",
        ),
        pytest.param(
            _policy({"StringEquals": {"other.example.com:sub": ME, "other.example.com:aud": "sts.amazonaws.com"}}),
            ["provider-key-mismatch", "provider-key-mismatch"],
            id="provider-key-mismatch",
        ),
        pytest.param(
            _policy({"StringEquals": {SUB: [ME, "system:serviceaccount:batch:api"], AUD: "sts.amazonaws.com"}}),
            ["shared-across-namespaces"],
            id="shared-across-namespaces",
        ),
        pytest.param(
            _policy({"StringEquals": {SUB: "system:serviceaccount:*:api", AUD: "sts.amazonaws.com"}}),
            [],
            id="literal-star-under-stringequals",
        ),
        pytest.param(
            _policy({"StringEquals": {SUB: ME, AUD: "sts.amazonaws.com", "aws:SourceIp": "x"}}),
            [],
            id="global-keys-ignored",
        ),
        # Statements that cannot grant the action are not linted.
        pytest.param(_policy(None, effect="Deny"), [], id="deny-not-linted"),
        pytest.param(_policy(None, action="sts:TagSession"), [], id="other-action-not-linted"),
    ],
)
def test_lint(policy: dict[str, Any], codes: list[str]) -> None:
    assert sorted(f.code for f in lint(parse(policy))) == sorted(codes)


def test_shared_across_namespaces_spans_statements() -> None:
    first = _policy({"StringEquals": {SUB: ME, AUD: "sts.amazonaws.com"}})["Statement"][0]
    second = _policy({"StringEquals": {SUB: "system:serviceaccount:batch:api", AUD: "sts.amazonaws.com"}})["Statement"][
        0
    ]
    (finding,) = lint(parse({"Statement": [first, second]}))
    assert finding.code == "shared-across-namespaces"
    assert finding.statement is None
    assert finding.describe() == "shared-across-namespaces (role): the role is assumable from namespaces: app, batch"


def test_multi_value_lint_only_with_several_audiences() -> None:
    statements = parse(_policy(CLEAN))
    assert lint(statements, ("sts.amazonaws.com",)) == []
    (finding,) = lint(statements, ("sts.amazonaws.com", "other"))
    assert finding.code == "multi-value-without-set-operator"
    any_value = parse(_policy({"StringEquals": {SUB: ME}, "ForAnyValue:StringEquals": {AUD: "sts.amazonaws.com"}}))
    assert lint(any_value, ("sts.amazonaws.com", "other")) == []


def test_findings_name_the_statement() -> None:
    (finding,) = lint(parse(_policy({"StringEquals": {SUB: ME}})))
    assert finding.describe() == "missing-aud (statement 0): no StringEquals condition on <provider>:aud"
