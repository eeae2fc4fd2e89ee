"""IAM ARNs and AWS partitions: the one place their shapes are spelled.

Every layer that reads or writes an ARN takes its rules from here: the ServiceAccount and ConfigMap
sources check role ARNs, ``--compose-role-arn`` builds them, the OIDC tooling builds and reads OIDC
provider ARNs, and the flags check account ids and partitions.

Character classes are spelled out: Python's ``\\d`` and ``\\w`` also match fullwidth and Arabic-Indic
digits and non-Latin letters, which IAM (and Go's regexp) never accept.
"""

from __future__ import annotations

import re

# Every partition AWS has is "aws" or "aws-" plus lowercase words: aws-cn, aws-us-gov, aws-iso-b, aws-eusc.
PARTITION = r"aws(?:-[a-z]+)*"
PARTITION_RE = re.compile(PARTITION)
DEFAULT_PARTITION = "aws"
# IAM account ids: exactly 12 ASCII digits.
ACCOUNT = r"[0-9]{12}"
ACCOUNT_RE = re.compile(ACCOUNT)
# IAM's allowed characters in role names and path elements.
_ROLE_PART = r"[A-Za-z0-9_+=,.@-]"
# arn:<partition>:iam::<12-digit account>:role/<optional path/><name of at most 64 characters>
ROLE_ARN_RE = re.compile(rf"arn:{PARTITION}:iam::{ACCOUNT}:role/(?:{_ROLE_PART}+/)*{_ROLE_PART}{{1,64}}")
# A role name IAM accepts: 1-64 of those characters.
ROLE_NAME_RE = re.compile(rf"{_ROLE_PART}{{1,64}}")
# A role path: "/" or "/a/b/". IAM also takes other printable ASCII in a path, but a role whose ARN
# ROLE_ARN_RE refuses could never be used through the webhook, so paths keep to the same characters.
ROLE_PATH_RE = re.compile(rf"/(?:{_ROLE_PART}+/)*")
MAX_ROLE_PATH = 512
# arn:<partition>:iam::<account, or "aws" for AWS managed policies>:policy/<optional path/><name of 1-128>
POLICY_ARN_RE = re.compile(rf"arn:{PARTITION}:iam::(?:{ACCOUNT}|aws):policy/(?:{_ROLE_PART}+/)*{_ROLE_PART}{{1,128}}")
# arn:<partition>:iam::<account>:oidc-provider/<issuer host and path>
OIDC_PROVIDER_ARN_RE = re.compile(
    rf"arn:(?P<partition>{PARTITION}):iam::(?P<account>{ACCOUNT}):oidc-provider/(?P<name>.+)"
)

# Region prefix → partition, longest prefix first: "us-isob-east-1" also starts with "us-iso".
PARTITIONS_BY_REGION_PREFIX = (
    ("us-isob-", "aws-iso-b"),
    ("us-iso-", "aws-iso"),
    ("us-gov-", "aws-us-gov"),
    ("cn-", "aws-cn"),
    ("eusc-", "aws-eusc"),
)

# A region name as AWS spells them: a two-letter area (us-east-1, eu-central-2, ap-southeast-4) or one
# of the partition prefixes above (us-gov-west-1, cn-north-1, us-isob-east-1, eusc-de-east-1), then
# words and a number. A value that does not look like one is still used (a new kind of region must
# not need a release) but warned about.
REGION_RE = re.compile(
    "(?:" + "|".join(re.escape(prefix) for prefix, _ in PARTITIONS_BY_REGION_PREFIX) + r"|[a-z]{2}-)"
    r"[a-z]+(?:-[a-z]+)*-[0-9]+"
)


def partition_for_region(region: str) -> str:
    """The AWS partition of a region, by its prefix (``cn-north-1`` → ``aws-cn``); ``aws`` otherwise."""
    for prefix, partition in PARTITIONS_BY_REGION_PREFIX:
        if region.startswith(prefix):
            return partition
    return DEFAULT_PARTITION


def compose_role_arn(value: str, account: str, partition: str) -> str:
    """``value`` as a role ARN: unchanged if it contains ``arn:`` (as upstream tests it) or is empty,
    else ``arn:<partition>:iam::<account>:role/<value>`` (``--compose-role-arn``).

    Empty stays empty [ours]: an empty ``role-arn`` means "no role", where upstream composes
    ``...:role/`` and mutates the pod with a role that cannot exist.
    """
    if not value or "arn:" in value:
        return value
    return f"arn:{partition}:iam::{account}:role/{value}"


def oidc_provider_arn(partition: str, account: str, host_path: str) -> str:
    """``arn:<partition>:iam::<account>:oidc-provider/<issuer host/path>``; the caller checks the parts."""
    return f"arn:{partition}:iam::{account}:oidc-provider/{host_path}"


def role_arn(partition: str, account: str, path: str, name: str) -> str:
    """``arn:<partition>:iam::<account>:role<path><name>`` (path ``/`` or ``/a/b/``); the caller checks the parts."""
    return f"arn:{partition}:iam::{account}:role{path}{name}"
