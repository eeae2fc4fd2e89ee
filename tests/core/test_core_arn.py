"""--compose-role-arn's rules: the pure composition of a role name into an ARN, the partition of a
region, and where ServiceAccount annotations are parsed."""

from __future__ import annotations

import pytest

from webhook.core.annotations import identity_from_annotations
from webhook.core.arn import compose_role_arn, partition_for_region
from webhook.core.settings import Settings

ACCOUNT = "111122223333"


# --- the pure function ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "partition", "expected"),
    [
        pytest.param("s3-reader", "aws", f"arn:aws:iam::{ACCOUNT}:role/s3-reader", id="name"),
        pytest.param("team/s3-reader", "aws", f"arn:aws:iam::{ACCOUNT}:role/team/s3-reader", id="path-and-name"),
        pytest.param("s3-reader", "aws-cn", f"arn:aws-cn:iam::{ACCOUNT}:role/s3-reader", id="china"),
        pytest.param("s3-reader", "aws-us-gov", f"arn:aws-us-gov:iam::{ACCOUNT}:role/s3-reader", id="govcloud"),
        pytest.param(
            "arn:aws:iam::444455556666:role/other", "aws", "arn:aws:iam::444455556666:role/other", id="full-arn-kept"
        ),
        pytest.param("arn:aws-cn:iam::444455556666:role/x", "aws", "arn:aws-cn:iam::444455556666:role/x", id="cn-kept"),
        # As upstream's test: any value containing "arn:" is left alone, even a broken one.
        pytest.param("not-an-arn:thing", "aws", "not-an-arn:thing", id="contains-arn-colon"),
        # [ours] empty means "no role" and stays empty (upstream composes ".../role/" and mutates).
        pytest.param("", "aws", "", id="empty-stays-empty"),
    ],
)
def test_compose_role_arn(value: str, partition: str, expected: str) -> None:
    assert compose_role_arn(value, ACCOUNT, partition) == expected


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("eu-west-1", "aws"),
        ("ap-southeast-5", "aws"),
        ("", "aws"),
        ("cn-north-1", "aws-cn"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-gov-east-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-iso-west-1", "aws-iso"),
        # us-isob- also starts with us-iso: the longer prefix has to win.
        ("us-isob-east-1", "aws-iso-b"),
        ("eusc-de-east-1", "aws-eusc"),
    ],
)
def test_partition_for_region(region: str, partition: str) -> None:
    assert partition_for_region(region) == partition


# --- where ServiceAccount annotations are parsed ----------------------------------------------------
COMPOSING = Settings(role_arn_account=ACCOUNT, role_arn_partition="aws-cn")


def test_annotation_role_name_is_composed_when_on() -> None:
    identity = identity_from_annotations("ns", "sa", {"eks.amazonaws.com/role-arn": "team/s3-reader"}, COMPOSING)
    assert identity.role_arn == f"arn:aws-cn:iam::{ACCOUNT}:role/team/s3-reader"
    assert identity.warnings == ()


def test_annotation_role_name_is_kept_when_off() -> None:
    identity = identity_from_annotations("ns", "sa", {"eks.amazonaws.com/role-arn": "s3-reader"}, Settings())
    assert identity.role_arn == "s3-reader"
    assert [w.kind for w in identity.warnings] == ["invalid-role-arn"]


def test_invalid_role_arn_warning_names_the_composed_value() -> None:
    identity = identity_from_annotations("ns", "sa", {"eks.amazonaws.com/role-arn": "bad name!"}, COMPOSING)
    assert identity.role_arn == f"arn:aws-cn:iam::{ACCOUNT}:role/bad name!"  # still injected, as upstream
    assert [w.kind for w in identity.warnings] == ["invalid-role-arn"]
    assert f"arn:aws-cn:iam::{ACCOUNT}:role/bad name!" in identity.warnings[0].message


def test_empty_annotation_is_no_role_even_when_composing() -> None:
    identity = identity_from_annotations("ns", "sa", {"eks.amazonaws.com/role-arn": ""}, COMPOSING)
    assert identity.role_arn == ""
