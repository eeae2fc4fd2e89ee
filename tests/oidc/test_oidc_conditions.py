"""IAM condition operators, one row per documented rule (see webhook/oidc/conditions.py)."""

from __future__ import annotations

import pytest

from webhook.oidc.conditions import evaluate, like_pattern, parse_operator
from webhook.oidc.errors import InputError

SUB = "oidc.example.com:sub"
AUD = "oidc.example.com:aud"
ME = "system:serviceaccount:app:api"
ONE_AUD = {SUB.lower(): (ME,), AUD.lower(): ("sts.amazonaws.com",)}
TWO_AUD = {SUB.lower(): (ME,), AUD.lower(): ("sts.amazonaws.com", "other")}
NO_AUD = {SUB.lower(): (ME,)}


@pytest.mark.parametrize(
    ("operator", "key", "values", "context", "expected"),
    [
        # StringEquals: exact, case-sensitive; several values ORed.
        pytest.param("StringEquals", SUB, [ME], ONE_AUD, True, id="equals"),
        pytest.param("StringEquals", SUB, [ME.upper()], ONE_AUD, False, id="equals-case-sensitive"),
        pytest.param("StringEquals", SUB, ["x", ME], ONE_AUD, True, id="equals-values-ored"),
        pytest.param("StringEquals", SUB.upper(), [ME], ONE_AUD, True, id="key-name-case-insensitive"),
        pytest.param("StringEqualsIgnoreCase", SUB, [ME.upper()], ONE_AUD, True, id="equals-ignore-case"),
        # Negated operators: NOR over the values.
        pytest.param("StringNotEquals", SUB, ["x"], ONE_AUD, True, id="not-equals-other"),
        pytest.param("StringNotEquals", SUB, ["x", ME], ONE_AUD, False, id="not-equals-nor"),
        pytest.param("StringNotEqualsIgnoreCase", SUB, [ME.upper()], ONE_AUD, False, id="not-equals-ignore-case"),
        # StringLike: * any run (also empty), ? exactly one character, anchored.
        pytest.param("StringLike", SUB, ["system:serviceaccount:app:*"], ONE_AUD, True, id="like-star"),
        pytest.param("StringLike", SUB, ["system:serviceaccount:*"], ONE_AUD, True, id="like-star-spans-colons"),
        pytest.param("StringLike", SUB, ["system:serviceaccount:app:api*"], ONE_AUD, True, id="like-star-empty"),
        pytest.param("StringLike", SUB, ["system:serviceaccount:ap?:api"], ONE_AUD, True, id="like-question"),
        pytest.param("StringLike", SUB, ["system:serviceaccount:a?:api"], ONE_AUD, False, id="like-question-one-char"),
        pytest.param("StringLike", SUB, ["serviceaccount:app:api"], ONE_AUD, False, id="like-anchored"),
        pytest.param("StringLike", SUB, ["system.serviceaccount.app.api"], ONE_AUD, False, id="like-dot-literal"),
        pytest.param("StringNotLike", SUB, ["*:kube-system:*"], ONE_AUD, True, id="not-like"),
        pytest.param("StringNotLike", SUB, ["*:app:*"], ONE_AUD, False, id="not-like-hit"),
        # A key the request does not have: false, except negated operators and IfExists.
        pytest.param("StringEquals", AUD, ["sts.amazonaws.com"], NO_AUD, False, id="missing-equals"),
        pytest.param("StringLike", AUD, ["*"], NO_AUD, False, id="missing-like-star"),
        pytest.param("StringNotEquals", AUD, ["x"], NO_AUD, True, id="missing-not-equals"),
        pytest.param("StringNotLike", AUD, ["x"], NO_AUD, True, id="missing-not-like"),
        pytest.param("StringEqualsIfExists", AUD, ["x"], NO_AUD, True, id="missing-if-exists"),
        pytest.param("StringEqualsIfExists", AUD, ["x"], ONE_AUD, False, id="present-if-exists-evaluates"),
        pytest.param("Null", AUD, ["true"], NO_AUD, True, id="null-true-missing"),
        pytest.param("Null", AUD, ["true"], ONE_AUD, False, id="null-true-present"),
        pytest.param("Null", AUD, ["false"], ONE_AUD, True, id="null-false-present"),
        # Set operators on the aud list.
        pytest.param("ForAnyValue:StringEquals", AUD, ["other"], TWO_AUD, True, id="any-value-one-matches"),
        pytest.param("ForAnyValue:StringEquals", AUD, ["nope"], TWO_AUD, False, id="any-value-none"),
        pytest.param("ForAnyValue:StringEquals", AUD, ["x"], NO_AUD, False, id="any-value-missing-false"),
        pytest.param(
            "ForAllValues:StringEquals",
            AUD,
            ["sts.amazonaws.com", "other"],
            TWO_AUD,
            True,
            id="all-values-subset",
        ),
        pytest.param("ForAllValues:StringEquals", AUD, ["sts.amazonaws.com"], TWO_AUD, False, id="all-values-extra"),
        pytest.param("ForAllValues:StringEquals", AUD, ["x"], NO_AUD, True, id="all-values-missing-true"),
        pytest.param("ForAnyValue:StringNotEquals", AUD, ["other"], TWO_AUD, True, id="any-value-not-equals"),
        pytest.param("ForAllValues:StringLike", AUD, ["*"], TWO_AUD, True, id="all-values-like"),
        # Plain operator on a multi-valued key (our documented assumption).
        pytest.param("StringEquals", AUD, ["other"], TWO_AUD, True, id="plain-multi-any-matches"),
        pytest.param("StringNotEquals", AUD, ["other"], TWO_AUD, False, id="plain-multi-negated-none-match"),
        # Other operators on keys the request lacks follow the missing-key rule.
        pytest.param("IpAddress", "aws:SourceIp", ["10.0.0.0/8"], ONE_AUD, False, id="other-op-missing"),
        pytest.param("NotIpAddress", "aws:SourceIp", ["10.0.0.0/8"], ONE_AUD, True, id="other-negated-missing"),
    ],
)
def test_condition(
    operator: str, key: str, values: list[str], context: dict[str, tuple[str, ...]], expected: bool
) -> None:
    assert evaluate(parse_operator(operator), key, values, context) is expected


@pytest.mark.parametrize(
    ("text", "base", "qualifier", "if_exists"),
    [
        pytest.param("StringEquals", "StringEquals", None, False, id="plain"),
        pytest.param("ForAnyValue:StringLike", "StringLike", "ForAnyValue", False, id="any"),
        pytest.param(
            "ForAllValues:StringNotEqualsIfExists", "StringNotEquals", "ForAllValues", True, id="all-ifexists"
        ),
    ],
)
def test_parse_operator(text: str, base: str, qualifier: str | None, if_exists: bool) -> None:
    op = parse_operator(text)
    assert (op.base, op.set_qualifier, op.if_exists) == (base, qualifier, if_exists)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("ForSomeValues:StringEquals", "unknown condition set operator", id="bad-qualifier"),
        pytest.param("stringequals", "is not a condition operator", id="lowercase"),
        pytest.param("", "is not a condition operator", id="empty"),
    ],
)
def test_parse_operator_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_operator(text)


def test_unsupported_operator_on_a_present_key_is_bad_input() -> None:
    with pytest.raises(InputError, match="cannot be evaluated"):
        evaluate(parse_operator("ArnLike"), SUB, ["arn:*"], ONE_AUD)


def test_null_takes_only_booleans() -> None:
    with pytest.raises(InputError, match="takes true or false"):
        evaluate(parse_operator("Null"), SUB, ["maybe"], ONE_AUD)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        pytest.param("a${*}b", "a*b", True, id="escaped-star-literal"),
        pytest.param("a${*}b", "axb", False, id="escaped-star-not-wildcard"),
        pytest.param("a${?}", "a?", True, id="escaped-question"),
        pytest.param("${$}x", "$x", True, id="escaped-dollar"),
        pytest.param("a$b", "a$b", True, id="bare-dollar"),
        pytest.param("(a)+[b]", "(a)+[b]", True, id="regex-metachars-literal"),
        pytest.param("line*", "line1\nline2", True, id="star-spans-newlines"),
    ],
)
def test_like_pattern(pattern: str, value: str, expected: bool) -> None:
    assert (like_pattern(pattern).fullmatch(value) is not None) is expected
