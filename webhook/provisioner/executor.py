"""The only code that turns a planned change into an AWS write: one boto3 call per change, in order.

The one exception is :class:`~webhook.provisioner.model.CreateBucket` with tags: S3 takes a new
bucket's tags in a second call (PutBucketTagging), right after CreateBucket.

The first failure stops the run: the changes after it were planned on the assumption that it would
succeed (a policy before its objects are readable, a provider before its client IDs). It is raised as
:class:`ExecutionStopped`, an :class:`~webhook.aws.errors.AwsError` of the same kind that also says
which change failed and which were applied before it. Every call is counted by the clients' tally.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from webhook.aws.errors import AwsError, translated
from webhook.aws.session import AwsClients
from webhook.provisioner.model import (
    OWNER_METADATA,
    AddClientID,
    Change,
    CreateBucket,
    CreateProvider,
    DeleteBucket,
    DeleteBucketPolicy,
    DeleteObject,
    DeleteProvider,
    PutBucketPolicy,
    PutObject,
    PutPublicAccessBlock,
    RemoveClientID,
    TagProvider,
    UpdateThumbprints,
)

# The API action each kind of change is made with (what its ``action`` should say; errors are named
# by this, so a change built with another action still reports the call that really failed).
ACTIONS: dict[type[Change], str] = {
    CreateBucket: "s3:CreateBucket",
    PutPublicAccessBlock: "s3:PutPublicAccessBlock",
    PutBucketPolicy: "s3:PutBucketPolicy",
    DeleteBucketPolicy: "s3:DeleteBucketPolicy",
    PutObject: "s3:PutObject",
    DeleteObject: "s3:DeleteObject",
    DeleteBucket: "s3:DeleteBucket",
    CreateProvider: "iam:CreateOpenIDConnectProvider",
    AddClientID: "iam:AddClientIDToOpenIDConnectProvider",
    RemoveClientID: "iam:RemoveClientIDFromOpenIDConnectProvider",
    UpdateThumbprints: "iam:UpdateOpenIDConnectProviderThumbprint",
    TagProvider: "iam:TagOpenIDConnectProvider",
    DeleteProvider: "iam:DeleteOpenIDConnectProvider",
}

# us-east-1 is S3's default location: CreateBucket there must not name it (S3 rejects the constraint).
_NO_LOCATION_CONSTRAINT = "us-east-1"


class ExecutionStopped(AwsError):
    """A change failed: ``change`` is the one that failed, ``applied`` those made before it."""

    def __init__(self, error: AwsError, change: Change, applied: Sequence[Change]) -> None:
        super().__init__(error.kind, error.action, error.message, error.code)
        self.change = change
        self.applied: tuple[Change, ...] = tuple(applied)


def execute(changes: Sequence[Change], aws: AwsClients) -> list[Change]:
    """Apply ``changes`` in order; return them (all applied), or raise :class:`ExecutionStopped`."""
    applied: list[Change] = []
    for change in changes:
        try:
            apply(change, aws)
        except AwsError as exc:
            raise ExecutionStopped(exc, change, applied) from exc
        applied.append(change)
    return applied


def apply(change: Change, aws: AwsClients) -> None:
    """Make the AWS call of one change; AwsError when AWS refuses it."""
    with translated(ACTIONS.get(type(change), change.action), change.target):
        _call(change, aws)


def _call(change: Change, aws: AwsClients) -> None:
    match change:
        case CreateBucket():
            _create_bucket(change, aws)
        case PutPublicAccessBlock():
            block = change.block
            aws.s3_for(change.bucket).put_public_access_block(
                Bucket=change.bucket,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": block.block_public_acls,
                    "IgnorePublicAcls": block.ignore_public_acls,
                    "BlockPublicPolicy": block.block_public_policy,
                    "RestrictPublicBuckets": block.restrict_public_buckets,
                },
            )
        case PutBucketPolicy():
            aws.s3_for(change.bucket).put_bucket_policy(Bucket=change.bucket, Policy=json.dumps(change.policy))
        case DeleteBucketPolicy():
            aws.s3_for(change.bucket).delete_bucket_policy(Bucket=change.bucket)
        case PutObject():
            extra = {"CacheControl": change.cache_control} if change.cache_control else {}
            aws.s3_for(change.bucket).put_object(
                Bucket=change.bucket,
                Key=change.key,
                Body=change.body,
                ContentType=change.content_type,
                Metadata={OWNER_METADATA: change.owner} if change.owner else {},
                **extra,
            )
        case DeleteObject():
            aws.s3_for(change.bucket).delete_object(Bucket=change.bucket, Key=change.key)
        case DeleteBucket():
            aws.s3_for(change.bucket).delete_bucket(Bucket=change.bucket)
        case CreateProvider():
            # Empty lists are left out rather than sent empty: IAM needs no thumbprint for an issuer
            # whose certificate it trusts through its own CA store, and client IDs may come later.
            optional = {
                name: list(values)
                for name, values in (("ClientIDList", change.client_ids), ("ThumbprintList", change.thumbprints))
                if values
            }
            tags = [{"Key": k, "Value": v} for k, v in sorted(change.tags.items())]
            aws.iam.create_open_id_connect_provider(Url=change.url, **optional, **({"Tags": tags} if tags else {}))
        case AddClientID():
            aws.iam.add_client_id_to_open_id_connect_provider(
                OpenIDConnectProviderArn=change.provider_arn, ClientID=change.client_id
            )
        case RemoveClientID():
            aws.iam.remove_client_id_from_open_id_connect_provider(
                OpenIDConnectProviderArn=change.provider_arn, ClientID=change.client_id
            )
        case UpdateThumbprints():
            aws.iam.update_open_id_connect_provider_thumbprint(
                OpenIDConnectProviderArn=change.provider_arn, ThumbprintList=list(change.thumbprints)
            )
        case TagProvider():
            aws.iam.tag_open_id_connect_provider(
                OpenIDConnectProviderArn=change.provider_arn,
                Tags=[{"Key": k, "Value": v} for k, v in sorted(change.tags.items())],
            )
        case DeleteProvider():
            aws.iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=change.provider_arn)
        case _:
            raise TypeError(f"no AWS call for a change of type {type(change).__name__}")


def _create_bucket(change: CreateBucket, aws: AwsClients) -> None:
    client = aws.s3(change.region)
    if change.region == _NO_LOCATION_CONSTRAINT:
        client.create_bucket(Bucket=change.bucket)
    else:
        client.create_bucket(Bucket=change.bucket, CreateBucketConfiguration={"LocationConstraint": change.region})
    aws.note_bucket_region(change.bucket, change.region)
    if change.tags:
        with translated("s3:PutBucketTagging", change.bucket):
            client.put_bucket_tagging(
                Bucket=change.bucket,
                Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(change.tags.items())]},
            )
