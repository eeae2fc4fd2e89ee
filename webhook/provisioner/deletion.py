"""What deleting an IRSAIssuer does to AWS: nothing for ``deletionPolicy: Retain``; for ``Delete``, only what is ours.

Ours means carrying our owner tag (bucket, provider) or owner metadata (objects): a document someone
else wrote, a bucket someone else created, a provider someone else registered are kept, and the plan's
notes say so. Our bucket policy statement is removed wherever it is (its Sid is ours alone); the
policy itself is deleted only when nothing else is left in it. Our bucket is deleted only when it is
then empty.
"""

from __future__ import annotations

from webhook.provisioner.documents import has_statement, json_diff, object_keys, statement_id, without_our_statement
from webhook.provisioner.model import (
    OWNER_TAG,
    Change,
    DeleteBucket,
    DeleteBucketPolicy,
    DeleteObject,
    DeleteProvider,
    IssuerSpec,
    ObservedBucket,
    ObservedIssuer,
    Plan,
    PutBucketPolicy,
    S3Discovery,
)


def plan_deletion(spec: IssuerSpec, observed: ObservedIssuer) -> Plan:
    """What deleting the object does to AWS: nothing for ``Retain``; for ``Delete``, only what is ours.

    Provider first, then the objects, our policy statement and the bucket: the reverse of creation.
    """
    if spec.deletion_policy == "Retain":
        return Plan(changes=(), notes=("deletionPolicy is Retain: nothing in AWS is touched",))
    changes: list[Change] = []
    notes: list[str] = []
    provider = observed.provider
    if provider is not None and provider.tags.get(OWNER_TAG) == spec.owner:
        changes.append(
            DeleteProvider(
                action="iam:DeleteOpenIDConnectProvider",
                target=provider.arn,
                summary=f"delete the OIDC provider for {provider.url}",
                provider_arn=provider.arn,
            )
        )
    elif provider is not None:
        notes.append(f"the OIDC provider {provider.arn} is kept: it does not carry {OWNER_TAG}={spec.owner}")
    bucket = observed.bucket
    if spec.s3 is not None and bucket is not None and bucket.exists:
        changes += _bucket_deletion(spec, spec.s3, bucket, notes)
    return Plan(changes=tuple(changes), notes=tuple(notes))


def _bucket_deletion(spec: IssuerSpec, s3: S3Discovery, bucket: ObservedBucket, notes: list[str]) -> list[Change]:
    changes: list[Change] = []
    kept = bucket.other_objects
    for key in object_keys(s3):
        found = bucket.objects.get(key)
        if found is None:
            continue
        if found.owner == spec.owner:
            changes.append(
                DeleteObject(
                    action="s3:DeleteObject",
                    target=f"s3://{s3.bucket}/{key}",
                    summary="delete the published document",
                    bucket=s3.bucket,
                    key=key,
                )
            )
        else:
            kept = True
            notes.append(f"s3://{s3.bucket}/{key} is kept: it was not written by this issuer")
    sid = statement_id(s3)
    if has_statement(bucket.policy, sid):
        rest = without_our_statement(bucket.policy, sid)
        target = f"s3://{s3.bucket}"
        if rest is None:
            changes.append(
                DeleteBucketPolicy(
                    action="s3:DeleteBucketPolicy",
                    target=target,
                    summary=f"delete the bucket policy (only statement {sid} was in it)",
                    bucket=s3.bucket,
                )
            )
        else:
            changes.append(
                PutBucketPolicy(
                    action="s3:PutBucketPolicy",
                    target=target,
                    summary=f"remove statement {sid}, others kept",
                    diff=json_diff(bucket.policy, rest, "bucket policy"),
                    bucket=s3.bucket,
                    policy=rest,
                )
            )
    if bucket.owner != spec.owner:
        notes.append(f"bucket {s3.bucket} is kept: it does not carry {OWNER_TAG}={spec.owner}")
    elif kept:
        notes.append(f"bucket {s3.bucket} is kept: it holds objects irsa-webhook did not write")
    else:
        changes.append(
            DeleteBucket(
                action="s3:DeleteBucket", target=f"s3://{s3.bucket}", summary="delete the bucket", bucket=s3.bucket
            )
        )
    return changes
