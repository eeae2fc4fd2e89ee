"""One rule for ARNs and partitions (webhook.core.arn), used by the role-ARN check, --aws-partition,
--compose-role-arn and the OIDC provider ARNs of the self-hosted tooling."""

from __future__ import annotations

import pytest

from webhook.core import arn
from webhook.core.annotations import parse_service_account
from webhook.core.settings import Settings
from webhook.oidc.errors import InputError
from webhook.oidc.trustpolicy import parse_provider_arn, provider_arn


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-eusc"])
def test_every_aws_partition_is_one(partition: str) -> None:
    assert arn.PARTITION_RE.fullmatch(partition)
    assert arn.ROLE_ARN_RE.fullmatch(f"arn:{partition}:iam::111122223333:role/app")
    issuer = "https://oidc.example.com/c1"
    built = provider_arn(issuer, "111122223333", partition)
    assert parse_provider_arn(built) == (partition, "111122223333", "oidc.example.com/c1")


@pytest.mark.parametrize("partition", ["amazon", "a", "aws-", "aws-1", "AWS", "aws_cn"])
def test_what_is_not_a_partition_is_refused_everywhere(partition: str) -> None:
    """The role-ARN check once took any lowercase word (``arn:foo:iam::...`` passed it) while the
    OIDC tooling took only aws partitions: the same string now means the same everywhere."""
    assert not arn.PARTITION_RE.fullmatch(partition)
    assert not arn.ROLE_ARN_RE.fullmatch(f"arn:{partition}:iam::111122223333:role/app")
    with pytest.raises(InputError):
        provider_arn("https://oidc.example.com/c1", "111122223333", partition)


def test_compose_and_partition_for_region() -> None:
    assert arn.compose_role_arn("team/app", "111122223333", "aws-cn") == "arn:aws-cn:iam::111122223333:role/team/app"
    assert arn.partition_for_region("us-isob-east-1") == "aws-iso-b"
    assert arn.ROLE_ARN_RE.fullmatch(
        arn.compose_role_arn("app", "111122223333", arn.partition_for_region("cn-north-1"))
    )


@pytest.mark.parametrize(("prefix", "partition"), arn.PARTITIONS_BY_REGION_PREFIX)
def test_every_region_form_the_partition_table_knows_is_a_region(prefix: str, partition: str) -> None:
    """``eusc-de-east-1`` was warned about (and denied under ``--strict``) though the table maps it."""
    region = f"{prefix}de-east-1"
    assert arn.REGION_RE.fullmatch(region)
    assert arn.partition_for_region(region) == partition
    account = {"metadata": {"namespace": "ns", "name": "sa", "annotations": {"eks.amazonaws.com/region": region}}}
    identity = parse_service_account(account, Settings())
    assert identity.region == region
    assert identity.warnings == ()


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-2", "ap-southeast-4", "il-central-1", "mx-central-1"])
def test_two_letter_regions(region: str) -> None:
    assert arn.REGION_RE.fullmatch(region)
    assert arn.partition_for_region(region) == "aws"


@pytest.mark.parametrize("text", ["US-EAST-1", "us-east", "useast1", "us-east-1a", "eusc-1", "e-east-1", "us_east_1"])
def test_what_is_not_a_region_still_is_not(text: str) -> None:
    assert not arn.REGION_RE.fullmatch(text)
