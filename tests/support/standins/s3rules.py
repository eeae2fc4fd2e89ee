"""What S3 refuses that moto does not: public policies under Block Public Access, ACLs, and the
defaults a new bucket gets.

AWS's rules, as documented (and as moto 5.2.6 does not enforce them):

- a bucket policy is *public* when an Allow statement grants a wildcard principal without a
  fixed-value condition on one of the keys of :data:`FIXED_VALUE_KEYS` ("The meaning of public");
- ``BlockPublicPolicy`` refuses a PutBucketPolicy whose policy is public (it does not touch a policy
  already in place); ``RestrictPublicBuckets`` stops a public policy from granting anything to
  anonymous callers (it does not touch the stored policy);
- a bucket created since April 2023 has all four Block Public Access settings on and ACLs disabled
  (Object Ownership "bucket owner enforced"): a write that sets an ACL other than the owner's
  full control fails with AccessControlListNotSupported, and an ACL never makes anything public.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from .policy import JSON, UnsupportedPolicy, as_list, load_policy, statements

# Condition keys that, pinned to fixed values, make a wildcard-principal grant non-public.
FIXED_VALUE_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:SourceIp",
        "aws:SourceArn",
        "aws:SourceVpc",
        "aws:SourceVpce",
        "aws:SourceOwner",
        "aws:SourceAccount",
        "aws:SourceOrgID",
        "aws:SourceOrgPaths",
        "aws:PrincipalOrgID",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:userid",
        "s3:DataAccessPointArn",
        "s3:DataAccessPointAccount",
    )
)
BLOCK_SETTINGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
NEW_BUCKET_BLOCK = dict.fromkeys(BLOCK_SETTINGS, True)
# Canned ACLs a bucket with ACLs disabled still accepts: they give the owner alone full control.
OWNER_ONLY_ACLS = frozenset({"private", "bucket-owner-full-control"})


def _wildcard_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any("*" in str(value) for values in principal.values() for value in as_list(values))
    return False


def _pinned(condition: Any) -> bool:
    """A positive operator pins one of FIXED_VALUE_KEYS to values without wildcards."""
    if not isinstance(condition, dict):
        return False
    for operator, keys in condition.items():
        op = operator.lower()
        if "not" in op.split(":")[-1] or op.endswith("ifexists") or not isinstance(keys, dict):
            continue
        for key, values in keys.items():
            if key.lower() in FIXED_VALUE_KEYS and all(
                "*" not in str(v) and "?" not in str(v) for v in as_list(values)
            ):
                return True
    return False


def is_public(policy: str | Mapping[str, Any]) -> bool:
    """AWS's "public" for a bucket policy (see the module docstring)."""
    return any(
        statement.get("Effect") == "Allow"
        and _wildcard_principal(statement.get("Principal", statement.get("NotPrincipal")))
        and not _pinned(statement.get("Condition"))
        for statement in statements(load_policy(policy))
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def public_access_block(s3: Any, bucket: str) -> dict[str, bool] | None:
    """The bucket's Block Public Access settings, None when it has none (moto's admin client ``s3``)."""
    try:
        config = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError as exc:
        if _code(exc) == "NoSuchPublicAccessBlockConfiguration":
            return None
        raise
    return {name: bool(config.get(name, False)) for name in BLOCK_SETTINGS}


def bucket_policy(s3: Any, bucket: str) -> JSON | None:
    """The bucket policy, parsed; None when the bucket has none."""
    try:
        text = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    except ClientError as exc:
        if _code(exc) == "NoSuchBucketPolicy":
            return None
        raise
    return load_policy(text)


def put_policy_refusal(s3: Any, bucket: str, document: bytes | str) -> str | None:
    """Why S3 would refuse PutBucketPolicy with ``document`` on ``bucket`` now (None: it would not):
    a public policy while the bucket's BlockPublicPolicy is on. For tests that write policies
    without going through :class:`~tests.support.standins.recorder.CallRecorder`."""
    block = public_access_block(s3, bucket)
    if not block or not block["BlockPublicPolicy"]:
        return None
    try:
        public = is_public(document.decode() if isinstance(document, bytes) else document)
    except UnsupportedPolicy:
        return None  # S3 answers MalformedPolicy for these; moto does that part itself
    if not public:
        return None
    return (
        f'User is not authorized to perform: s3:PutBucketPolicy on resource: "arn:aws:s3:::{bucket}" '
        "because public policies are blocked by the BlockPublicPolicy block public access setting."
    )


def acl_refusal(method: str, query: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    """Why S3 would refuse this request on a bucket with ACLs disabled (None: it would not)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if method == "PUT" and "acl" in query:
        return "The bucket does not allow ACLs"
    if method not in ("PUT", "POST"):
        return None
    canned = lowered.get("x-amz-acl")
    if canned is not None and canned not in OWNER_ONLY_ACLS:
        return "The bucket does not allow ACLs"
    if any(name.startswith("x-amz-grant-") for name in lowered):
        return "The bucket does not allow ACLs"
    return None
