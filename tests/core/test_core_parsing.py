"""Annotation parsing as Go parses it, and never an exception for any JSON value.

The token-expiration annotation is read with the rules of Go's ``strconv.ParseInt(s, 10, 64)``:
ASCII digits with an optional sign, inside int64. Python's ``int()`` is wider (Unicode digits,
underscores, surrounding spaces) and raises past 4,300 digits, which once let one annotation stop
the ServiceAccount cache of a whole cluster.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.cases import load_yaml, pod_request
from tests.support.paths import CASES
from webhook.core import outcomes
from webhook.core.annotations import parse_service_account
from webhook.core.arn import ROLE_ARN_RE
from webhook.core.decide import decide
from webhook.core.goparse import parse_go_int
from webhook.core.settings import DEFAULT_TOKEN_EXPIRATION, MAX_TOKEN_EXPIRATION, Settings

INT64_MAX = (1 << 63) - 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("3600", 3600, id="plain"),
        pytest.param("+3600", 3600, id="plus-sign"),
        pytest.param("-5", -5, id="negative"),
        pytest.param("0" * 5000 + "7", 7, id="leading-zeros-5000"),
        pytest.param(str(INT64_MAX), INT64_MAX, id="int64-max"),
        pytest.param(str(-INT64_MAX - 1), -INT64_MAX - 1, id="int64-min"),
        pytest.param(str(INT64_MAX + 1), None, id="int64-max-plus-one"),
        pytest.param(str(-INT64_MAX - 2), None, id="int64-min-minus-one"),
        pytest.param("9" * 5000, None, id="5000-digits"),
        pytest.param("9" * 4301, None, id="past-python-digit-limit"),
        pytest.param("\uff13\uff16\uff10\uff10", None, id="fullwidth-digits"),
        pytest.param("\u0663\u0666\u0660\u0660", None, id="arabic-indic-digits"),
        pytest.param("1_000", None, id="underscore"),
        pytest.param(" 600", None, id="leading-space"),
        pytest.param("600\n", None, id="trailing-newline"),
        pytest.param("", None, id="empty"),
        pytest.param("+", None, id="sign-only"),
        pytest.param("0x10", None, id="hex"),
        pytest.param("1e3", None, id="exponent"),
    ],
)
def test_parse_go_int(text: str, expected: int | None) -> None:
    assert parse_go_int(text) == expected


FULLWIDTH_ACCOUNT = "".join(chr(0xFF10 + int(d)) for d in "111122223333")  # digits U+FF10..U+FF19
CYRILLIC_NAME = "\u043f\u0440\u0438\u043b\u043e\u0436\u0435\u043d\u0438\u0435"


@pytest.mark.parametrize(
    "arn",
    [
        pytest.param(f"arn:aws:iam::{FULLWIDTH_ACCOUNT}:role/app", id="fullwidth-account"),
        pytest.param(f"arn:aws:iam::111122223333:role/{CYRILLIC_NAME}", id="cyrillic-name"),
        pytest.param("arn:aws:iam::111122223333:role/app\u0663", id="arabic-indic-digit-in-name"),
    ],
)
def test_role_arn_pattern_is_ascii_only(arn: str) -> None:
    assert not ROLE_ARN_RE.fullmatch(arn)
    assert ROLE_ARN_RE.fullmatch("arn:aws-cn:iam::111122223333:role/path/to/app_1+=,.@-")


def _sa(annotations: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": "app", "annotations": annotations}}


def test_5000_digit_token_expiration_is_default_with_warning() -> None:
    identity = parse_service_account(
        _sa(
            {
                "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app",
                "eks.amazonaws.com/token-expiration": "5" * 5000,
            }
        ),
        Settings(),
    )
    assert identity.token_expiration == DEFAULT_TOKEN_EXPIRATION
    assert [w.kind for w in identity.warnings] == ["invalid-token-expiration"]


DEEP: Any = []
for _ in range(1200):
    DEEP = [DEEP]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(["a"], id="list"),
        pytest.param({"a": 1}, id="object"),
        pytest.param(None, id="null"),
        pytest.param(DEEP, id="nested-1200-deep"),
        pytest.param(10**5000, id="int-5000-digits"),
        pytest.param(1e308 * 10, id="infinity"),
    ],
)
@pytest.mark.parametrize("key", ["role-arn", "audience", "sts-regional-endpoints", "token-expiration"])
def test_any_annotation_value_parses_without_raising(key: str, value: Any) -> None:
    annotations = {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app",
        f"eks.amazonaws.com/{key}": value,
    }
    identity = parse_service_account(_sa(annotations), Settings())
    assert 600 <= identity.token_expiration <= MAX_TOKEN_EXPIRATION
    for warning in identity.warnings:
        assert len(warning.message) < 120


@pytest.mark.parametrize("metadata", [None, [], "x", {"name": ["a"], "namespace": {"b": DEEP}, "annotations": DEEP}])
def test_any_metadata_parses_without_raising(metadata: Any) -> None:
    identity = parse_service_account({"metadata": metadata}, Settings())
    assert (identity.namespace, identity.name, identity.role_arn) == ("", "", "")


@pytest.mark.parametrize(
    "name", [pytest.param(["web"], id="list"), pytest.param({"a": DEEP}, id="deep-object"), pytest.param(7, id="int")]
)
def test_container_name_of_any_type_does_not_raise(name: Any) -> None:
    # The API server only sends string names; a direct caller can send anything.
    pod = {
        "metadata": {
            "annotations": {"eks.amazonaws.com/skip-containers": "web", "eks.amazonaws.com/token-expiration": DEEP}
        },
        "spec": {
            "containers": [
                {"name": name, "env": [{"name": DEEP}], "volumeMounts": [{"name": DEEP, "mountPath": "/x"}]},
                {"name": "web"},
            ]
        },
    }
    identity = parse_service_account(
        _sa({"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app"}), Settings()
    )
    result = decide(pod_request(pod, "shop"), identity, Settings())
    assert result.allowed
    # The container with the odd name is mutated, the skipped one is not.
    assert [op["path"] for op in result.patch if op["path"].startswith("/spec/containers/1")] == []
    assert any(op["path"].startswith("/spec/containers/0/") for op in result.patch)


def test_every_declared_decision_is_reachable() -> None:
    """Each decision the core declares is produced by at least one YAML case: no dead labels."""
    declared = set(outcomes.DECISIONS)
    produced = {load_yaml(path)["expected"].get("decision") for path in (CASES / "mutation").glob("*.yaml")}
    # A pod without a spec is never sent by the API server, and a request that is not a Pod CREATE or
    # whose object cannot be read never reaches the core: the admission tests cover those three.
    unreachable_here = {outcomes.MALFORMED, outcomes.BAD_OBJECT, outcomes.IGNORED}
    assert declared - unreachable_here <= produced, declared - produced
