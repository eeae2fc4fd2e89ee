"""What no tenant can make the webhook keep: annotation values longer than their service accepts.

Anyone who may edit a ServiceAccount can give it 256 KiB of annotations, and every replica keeps what
it parses from every ServiceAccount of the cluster. Each bound is the service's own limit (IAM's 2,048
characters for an ARN and 255 for an OIDC client ID, a DNS label's 63 for a region); at the bound the
value is used as before, one character over it is dropped with a warning that gives the length and
only the start of the value. The ConfigMap's entries get the same bounds (tests/sources).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from webhook.core.annotations import (
    MAX_AUDIENCE_CHARS,
    MAX_REGION_CHARS,
    MAX_ROLE_ARN_CHARS,
    TOO_LONG_SHOWN_CHARS,
    parse_service_account,
)
from webhook.core.records import MAX_WARNING_CHARS, Identity
from webhook.core.settings import DEFAULT_AUDIENCE, Settings

ROLE = "arn:aws:iam::111122223333:role/app"
ROLE_PREFIX = "arn:aws:iam::111122223333:role/"
DEFAULTS = Settings()
COMPOSE = Settings(role_arn_account="111122223333")
KIB = 1024


def role_arn(length: int) -> str:
    """An IAM role ARN (a long path, a short name) of exactly ``length`` characters."""
    path = "p" * (length - len(ROLE_PREFIX) - len("/app"))
    return f"{ROLE_PREFIX}{path}/app"


def region(length: int) -> str:
    """A name shaped like an AWS region (``us-aaa...-1``) of exactly ``length`` characters."""
    return "us-" + "a" * (length - 5) + "-1"


def audience(length: int) -> str:
    return "sts.amazonaws.com/" + "a" * (length - len("sts.amazonaws.com/"))


def _sa(annotations: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": "app", "annotations": annotations}}


def _parse(settings: Settings, **values: str) -> Identity:
    annotations = {"eks.amazonaws.com/role-arn": ROLE}
    annotations.update({f"eks.amazonaws.com/{key.replace('_', '-')}": value for key, value in values.items()})
    return parse_service_account(_sa(annotations), settings)


@pytest.mark.parametrize(
    ("values", "settings", "field", "kept", "warning"),
    [
        pytest.param({"role_arn": role_arn(2048)}, Settings(), "role_arn", role_arn(2048), None, id="role-arn-at-2048"),
        pytest.param({"role_arn": role_arn(2049)}, Settings(), "role_arn", "", "role-arn-too-long", id="role-arn-2049"),
        pytest.param(
            {"role_arn": role_arn(255 * KIB)}, Settings(), "role_arn", "", "role-arn-too-long", id="role-arn-255-kib"
        ),
        pytest.param(  # --compose-role-arn: the bound is on the ARN IAM would see, not on the annotation
            {"role_arn": "p" * (2048 - len(ROLE_PREFIX))},
            COMPOSE,
            "role_arn",
            ROLE_PREFIX + "p" * (2048 - len(ROLE_PREFIX)),
            "invalid-role-arn",  # a 2,017-character name is no IAM role name, but fits: used
            id="composed-at-2048",
        ),
        pytest.param(
            {"role_arn": "p" * (2049 - len(ROLE_PREFIX))},
            COMPOSE,
            "role_arn",
            "",
            "role-arn-too-long",
            id="composed-2049",
        ),
        pytest.param({"audience": audience(255)}, Settings(), "audience", audience(255), None, id="audience-at-255"),
        pytest.param(
            {"audience": audience(256)},
            Settings(),
            "audience",
            DEFAULT_AUDIENCE,
            "audience-too-long",
            id="audience-256",
        ),
        pytest.param(
            {"audience": audience(255 * KIB)},
            Settings(token_audience="aud.example"),
            "audience",
            "aud.example",  # the flag's value, as for any audience that cannot be used
            "audience-too-long",
            id="audience-255-kib-flag",
        ),
        pytest.param({"region": region(63)}, Settings(), "region", region(63), None, id="region-at-63"),
        pytest.param({"region": region(64)}, Settings(), "region", None, "region-too-long", id="region-64"),
        pytest.param({"region": region(255 * KIB)}, Settings(), "region", None, "region-too-long", id="region-255-kib"),
    ],
)
def test_a_value_over_its_bound_is_dropped_with_one_warning(
    values: dict[str, str], settings: Settings, field: str, kept: str | None, warning: str | None
) -> None:
    identity = _parse(settings, **values)
    assert getattr(identity, field) == kept
    assert [w.kind for w in identity.warnings] == ([warning] if warning else [])


@pytest.mark.parametrize(
    ("key", "value", "limit"),
    [
        pytest.param("role-arn", role_arn(255 * KIB), MAX_ROLE_ARN_CHARS, id="role-arn"),
        pytest.param("audience", audience(255 * KIB), MAX_AUDIENCE_CHARS, id="audience"),
        pytest.param("region", region(255 * KIB), MAX_REGION_CHARS, id="region"),
    ],
)
def test_the_warning_gives_the_length_and_only_the_start_of_the_value(key: str, value: str, limit: int) -> None:
    identity = _parse(DEFAULTS, **{key.replace("-", "_"): value})
    (warning,) = identity.warnings
    assert len(warning.message) <= MAX_WARNING_CHARS
    assert f"{key} of {len(value)} characters is over {limit}" in warning.message
    assert value[: TOO_LONG_SHOWN_CHARS + 1] not in warning.message


def test_nothing_kept_of_a_maximum_size_service_account_is_longer_than_a_bound() -> None:
    """Every annotation at 255 KiB, as kube-apiserver accepts them: what the cache keeps is small."""
    big = "x" * (255 * KIB)
    annotations = {
        f"eks.amazonaws.com/{key}": big
        for key in ("role-arn", "audience", "region", "role-session-name", "sts-regional-endpoints", "token-expiration")
    }
    identity = parse_service_account(_sa(annotations), Settings())
    strings = [v for v in dataclasses.astuple(identity) if isinstance(v, str)]
    strings += [w.message for w in identity.warnings]
    assert max(len(s) for s in strings) <= MAX_AUDIENCE_CHARS
    assert sorted(w.kind for w in identity.warnings) == [
        "audience-too-long",
        "invalid-role-session-name",
        "invalid-sts-regional-endpoints",
        "invalid-token-expiration",
        "region-too-long",
        "role-arn-too-long",
    ]
