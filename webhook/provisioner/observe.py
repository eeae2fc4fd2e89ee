"""What AWS holds for one issuer, read and never written: the only code that fills an ObservedIssuer.

Reads, in order: who the credentials are (sts:GetCallerIdentity: account and partition), the bucket
(HeadBucket: whether it exists and its region; then its tags, public access block, policy and our two
objects), and the IAM OIDC provider of the issuer (ListOpenIDConnectProviders, then
GetOpenIDConnectProvider of the one whose name is the issuer's host/path).

"Absent" answers are part of the observation (no bucket, no tags, no block, no policy, no object);
every other failure raises :class:`~webhook.aws.errors.AwsError`, classified.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from webhook.aws.errors import AwsError, translated
from webhook.aws.session import AwsClients
from webhook.oidc.issuer import host_path
from webhook.provisioner.model import (
    JSON,
    OWNER_METADATA,
    OWNER_TAG,
    ClusterKeys,
    IssuerSpec,
    ObservedBucket,
    ObservedIssuer,
    ObservedObject,
    ObservedProvider,
    PublicAccessBlock,
    S3Discovery,
)

# The objects the provisioner publishes, relative to the prefix.
DISCOVERY_PATH = ".well-known/openid-configuration"
JWKS_PATH = "keys.json"
# A discovery document or JWKS is a few KiB; anything past this is not ours, and is not read whole.
MAX_OBJECT_BYTES = 1 << 20
# S3's answers for "there is none" (a HEAD has no body: its code is the bare status).
_NO_BUCKET = frozenset({"NoSuchBucket", "404"})
_NO_TAGS = frozenset({"NoSuchTagSet"})
_NO_BLOCK = frozenset({"NoSuchPublicAccessBlockConfiguration"})
_NO_POLICY = frozenset({"NoSuchBucketPolicy"})
_NO_KEY = frozenset({"NoSuchKey"})

T = TypeVar("T")


def observe_issuer(spec: IssuerSpec, aws: AwsClients, cluster: ClusterKeys) -> ObservedIssuer:
    """Read everything the planner compares with ``spec``; ``cluster`` is passed through as observed."""
    with translated("sts:GetCallerIdentity"):
        identity = aws.sts.get_caller_identity()
    account, partition = str(identity["Account"]), str(identity["Arn"]).split(":")[1]
    return ObservedIssuer(
        account=account,
        partition=partition,
        bucket=observe_bucket(spec.s3, aws) if spec.s3 is not None else None,
        provider=observe_provider(spec.issuer_url, aws),
        cluster=cluster,
    )


def observe_bucket(s3: S3Discovery, aws: AwsClients) -> ObservedBucket:
    """The bucket of ``s3`` and our two objects in it; ``exists=False`` (and nothing else) when there
    is no such bucket."""
    bucket = s3.bucket
    region = _bucket_region(bucket, aws, s3.region)
    if region is None:
        return ObservedBucket(name=bucket, exists=False)
    aws.note_bucket_region(bucket, region)
    client = aws.s3(region)
    tags = _bucket_tags(client, bucket)
    keys = (s3.key(DISCOVERY_PATH), s3.key(JWKS_PATH))
    return ObservedBucket(
        name=bucket,
        exists=True,
        region=region,
        owner=tags.get(OWNER_TAG),
        public_access_block=_public_access_block(client, bucket),
        policy=_bucket_policy(client, bucket),
        objects={key: _object(client, bucket, key) for key in keys},
        # Only a bucket we tagged may ever be deleted, and only when nothing else is in it: the
        # listing is made for those alone (one call, at most three keys).
        other_objects=_other_objects(client, bucket, keys) if OWNER_TAG in tags else False,
    )


def observe_provider(issuer_url: str, aws: AwsClients) -> ObservedProvider | None:
    """The IAM OIDC provider for ``issuer_url``, None when the account has none.

    IAM names a provider by the issuer's host and path: the host compares case-insensitively (DNS),
    the path exactly (the token's ``iss`` is compared byte for byte).
    """
    wanted = host_path(issuer_url)
    with translated("iam:ListOpenIDConnectProviders"):
        listed = aws.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    arn = next((p["Arn"] for p in listed if _same_name(p["Arn"].partition(":oidc-provider/")[2], wanted)), None)
    if arn is None:
        return None
    with translated("iam:GetOpenIDConnectProvider", arn):
        provider = aws.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    return ObservedProvider(
        arn=arn,
        url=str(provider["Url"]).removeprefix("https://"),
        client_ids=tuple(provider.get("ClientIDList", [])),
        thumbprints=tuple(provider.get("ThumbprintList", [])),
        tags={t["Key"]: t["Value"] for t in provider.get("Tags", [])},
    )


def _same_name(name: str, wanted: str) -> bool:
    host, _, path = name.partition("/")
    wanted_host, _, wanted_path = wanted.partition("/")
    return host.lower() == wanted_host.lower() and path == wanted_path


def _bucket_region(bucket: str, aws: AwsClients, expected: str) -> str | None:
    """The bucket's region, None when it does not exist. HeadBucket answers with the region in a
    header (also when the request went to another region); GetBucketLocation only where it did not."""
    head = _read("s3:HeadBucket", bucket, _NO_BUCKET, lambda: aws.s3(expected).head_bucket(Bucket=bucket))
    if head is None:
        return None
    region = head.get("BucketRegion") or head["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")
    if region:
        return str(region)
    with translated("s3:GetBucketLocation", bucket):
        location = aws.s3(expected).get_bucket_location(Bucket=bucket).get("LocationConstraint") or ""
    # No constraint is us-east-1; "EU" is the old name of eu-west-1.
    return {"": "us-east-1", "EU": "eu-west-1"}.get(str(location), str(location))


def _read(action: str, target: str, absent: frozenset[str], call: Callable[[], T]) -> T | None:
    """``call()``, or None when AWS answers with one of the ``absent`` codes (there is no such thing);
    any other failure raises AwsError."""
    try:
        with translated(action, target):
            return call()
    except AwsError as exc:
        if exc.code in absent:
            return None
        raise


def _bucket_tags(client: Any, bucket: str) -> dict[str, str]:
    got = _read("s3:GetBucketTagging", bucket, _NO_TAGS, lambda: client.get_bucket_tagging(Bucket=bucket))
    return {t["Key"]: t["Value"] for t in got["TagSet"]} if got is not None else {}


def _public_access_block(client: Any, bucket: str) -> PublicAccessBlock | None:
    got = _read("s3:GetPublicAccessBlock", bucket, _NO_BLOCK, lambda: client.get_public_access_block(Bucket=bucket))
    if got is None:
        return None
    config = got["PublicAccessBlockConfiguration"]
    return PublicAccessBlock(
        block_public_acls=bool(config.get("BlockPublicAcls", False)),
        ignore_public_acls=bool(config.get("IgnorePublicAcls", False)),
        block_public_policy=bool(config.get("BlockPublicPolicy", False)),
        restrict_public_buckets=bool(config.get("RestrictPublicBuckets", False)),
    )


def _bucket_policy(client: Any, bucket: str) -> JSON | None:
    got = _read("s3:GetBucketPolicy", bucket, _NO_POLICY, lambda: client.get_bucket_policy(Bucket=bucket))
    if got is None:
        return None
    try:
        policy = json.loads(got["Policy"])
    except ValueError as exc:
        raise AwsError("terminal", "s3:GetBucketPolicy", f"the policy of bucket {bucket} is not JSON: {exc}") from exc
    if not isinstance(policy, dict):
        raise AwsError("terminal", "s3:GetBucketPolicy", f"the policy of bucket {bucket} is not a JSON object")
    return policy


def _other_objects(client: Any, bucket: str, ours: tuple[str, ...]) -> bool:
    """Whether the bucket holds any object besides ``ours`` (three keys listed are enough to know)."""
    with translated("s3:ListObjectsV2", bucket):
        listed = client.list_objects_v2(Bucket=bucket, MaxKeys=len(ours) + 1)
    return any(item["Key"] not in ours for item in listed.get("Contents", []))


def _object(client: Any, bucket: str, key: str) -> ObservedObject | None:
    target = f"s3://{bucket}/{key}"
    got = _read("s3:GetObject", target, _NO_KEY, lambda: client.get_object(Bucket=bucket, Key=key))
    if got is None:
        return None
    # One byte past the limit is enough to differ from anything we would write: the planner replaces it.
    with translated("s3:GetObject", target), got["Body"] as stream:
        body = stream.read(MAX_OBJECT_BYTES + 1)
    modified = got.get("LastModified")
    return ObservedObject(
        body=body,
        content_type=got.get("ContentType"),
        cache_control=got.get("CacheControl"),
        owner=got.get("Metadata", {}).get(OWNER_METADATA),
        last_modified=modified.isoformat() if modified is not None else None,
    )
