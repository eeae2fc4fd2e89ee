"""The pure planner: an IRSAIssuer and what was observed in, the changes that make them agree out.

No I/O: the observer fills an :class:`ObservedIssuer`, the executor makes the changes, and ``plan``,
``apply`` and the controller all take their changes from here, so a plan shows exactly what an apply
will do. A converged issuer plans nothing (every comparison is semantic, see ``documents``).

The order is the order the writes must happen in: bucket, public access block, bucket policy, the
JWKS, the discovery document, the OIDC provider. The JWKS goes before the discovery document that
points at it, and both before the provider, so STS never finds an issuer whose keys are not there yet.

Two things are never published: a key set that is unknown (kube-apiserver's JWKS could not be read)
and an empty one. Either would make every token of the cluster fail, so the documents are left as
they are and the plan says why in its notes.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from webhook.core.arn import oidc_provider_arn, partition_for_region
from webhook.oidc.issuer import host_path
from webhook.provisioner.deletion import plan_deletion
from webhook.provisioner.documents import (
    CACHE_CONTROL,
    CONTENT_TYPE,
    JWK,
    algorithms,
    desired_jwks,
    discovery_body,
    has_statement,
    json_diff,
    jwks_body,
    jwks_diff,
    kids,
    merged_bucket_policy,
    object_keys,
    parse_json,
    policy_statement,
    same_jwks,
    same_policy,
)
from webhook.provisioner.model import (
    OWNER_TAG,
    AddClientID,
    Change,
    CreateBucket,
    CreateProvider,
    IssuerSpec,
    ObservedBucket,
    ObservedIssuer,
    ObservedObject,
    ObservedProvider,
    Plan,
    PublicAccessBlock,
    PutBucketPolicy,
    PutObject,
    PutPublicAccessBlock,
    RemoveClientID,
    S3Discovery,
    UpdateThumbprints,
)

# plan_deletion lives in its own module and is offered here too: the planner is the one place to look.
__all__ = ["foreign_provider_note", "missing_client_ids", "plan_deletion", "plan_issuer", "wanted_block"]

# What a bucket we create gets: a public bucket policy allowed, ACLs still blocked (we never use them).
NEW_BUCKET_BLOCK = PublicAccessBlock(
    block_public_acls=True, ignore_public_acls=True, block_public_policy=False, restrict_public_buckets=False
)


def plan_issuer(spec: IssuerSpec, observed: ObservedIssuer) -> Plan:
    """The changes that publish ``spec`` and ensure its OIDC provider, in the order they must be made."""
    keys = desired_jwks(spec, observed.cluster.jwks)
    desired = tuple(kids(keys)) if keys else ()
    changes: list[Change] = []
    notes: list[str] = []
    if spec.s3 is not None:
        bucket = observed.bucket or ObservedBucket(name=spec.s3.bucket, exists=False)
        blocked = _blocked(spec, bucket)
        if blocked:
            return Plan(changes=(), desired_kids=desired, blocked=blocked)
        changes += _bucket_changes(spec, spec.s3, bucket)
        if not keys:
            notes.append(_no_keys_note(spec, observed, keys))
        else:
            changes += _document_changes(spec, spec.s3, bucket, keys)
    changes += _provider_changes(spec, observed, notes)
    return Plan(changes=tuple(changes), notes=tuple(notes), desired_kids=desired)


def _blocked(spec: IssuerSpec, bucket: ObservedBucket) -> str | None:
    s3 = spec.s3
    assert s3 is not None
    if not bucket.exists:
        if s3.create_bucket:
            return None
        return f"bucket {s3.bucket} does not exist: create it or set discovery.s3.createBucket: true"
    if bucket.region and bucket.region != s3.region:
        return (
            f"bucket {s3.bucket} is in {bucket.region}, not {s3.region}: set spec.discovery.s3.region "
            f"to {bucket.region} (the issuer URL names the region)"
        )
    for key in object_keys(s3):
        found = bucket.objects.get(key)
        if found is not None and found.owner not in (None, spec.owner):
            return (
                f"s3://{s3.bucket}/{key} belongs to {found.owner}: two issuers publish to the same place; "
                "give this one another discovery.s3.prefix"
            )
    return None


def _no_keys_note(spec: IssuerSpec, observed: ObservedIssuer, keys: list[JWK] | None) -> str:
    kept = "keys.json and the discovery document are left as they are"
    if keys is None:
        why = observed.cluster.error or "it could not be read"
        return f"kube-apiserver's key set (/openid/v1/jwks) is unknown ({why}): {kept} until it can be read"
    return f"the key set to publish is empty (kube-apiserver serves no key and spec.keys gives none): {kept}"


def _bucket_changes(spec: IssuerSpec, s3: S3Discovery, bucket: ObservedBucket) -> list[Change]:
    changes: list[Change] = []
    target = f"s3://{s3.bucket}"
    if not bucket.exists:
        changes.append(
            CreateBucket(
                action="s3:CreateBucket",
                target=target,
                summary=f"create bucket {s3.bucket} in {s3.region}, tagged {OWNER_TAG}={spec.owner}",
                bucket=s3.bucket,
                region=s3.region,
                tags={OWNER_TAG: spec.owner},
            )
        )
    current = bucket.public_access_block if bucket.exists else None
    wanted = wanted_block(bucket)
    if wanted is not None and wanted != current:
        changes.append(
            PutPublicAccessBlock(
                action="s3:PutPublicAccessBlock",
                target=target,
                summary="allow a public bucket policy (BlockPublicPolicy, RestrictPublicBuckets off; ACLs unchanged)",
                diff=json_diff(current and asdict(current), asdict(wanted), "public access block"),
                bucket=s3.bucket,
                block=wanted,
            )
        )
    policy = bucket.policy if bucket.exists else None
    statement = policy_statement(spec, partition_for_region(s3.region))
    merged = merged_bucket_policy(policy, statement)
    if not same_policy(policy, merged):
        if policy is None:
            summary = f"create the bucket policy: public s3:GetObject on the two documents ({statement['Sid']})"
        elif has_statement(policy, statement["Sid"]):
            summary = f"restore statement {statement['Sid']} (public s3:GetObject on the two documents)"
        else:
            summary = f"add statement {statement['Sid']} (public s3:GetObject on the two documents), others kept"
        diff = json_diff(policy, merged, "bucket policy")
        changes.append(
            PutBucketPolicy(
                action="s3:PutBucketPolicy", target=target, summary=summary, diff=diff, bucket=s3.bucket, policy=merged
            )
        )
    return changes


def wanted_block(bucket: ObservedBucket) -> PublicAccessBlock | None:
    """The bucket's public access block once published; None when it has none and needs none.

    Only the two settings that stop a public bucket policy are turned off; the ACL settings of an
    existing bucket stay as they are (the provisioner never uses ACLs).
    """
    if not bucket.exists:
        return NEW_BUCKET_BLOCK
    current = bucket.public_access_block
    if current is None:
        return None
    return replace(current, block_public_policy=False, restrict_public_buckets=False)


def _document_changes(spec: IssuerSpec, s3: S3Discovery, bucket: ObservedBucket, keys: list[JWK]) -> list[Change]:
    discovery_key, jwks_key = object_keys(s3)
    objects = bucket.objects if bucket.exists else {}
    changes: list[Change] = []
    found = objects.get(jwks_key)
    published = _published_keys(found)
    body = jwks_body(keys)
    same = published is not None and same_jwks(published, keys)
    jwks_change = _object_change(spec, s3, jwks_key, body, found, same_body=same)
    if jwks_change:
        changes.append(replace(jwks_change, diff=jwks_diff(published or [], keys)))
    found = objects.get(discovery_key)
    body = discovery_body(spec, algorithms(keys))
    before = parse_json(found.body) if found else None
    same = found is not None and before == parse_json(body)
    discovery_change = _object_change(spec, s3, discovery_key, body, found, same_body=same)
    if discovery_change:
        changes.append(replace(discovery_change, diff=json_diff(before, parse_json(body), "discovery document")))
    return changes


def _published_keys(found: ObservedObject | None) -> list[JWK] | None:
    document = parse_json(found.body) if found else None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        return None
    return [key for key in document["keys"] if isinstance(key, dict)]


def _object_change(
    spec: IssuerSpec, s3: S3Discovery, key: str, body: bytes, found: ObservedObject | None, *, same_body: bool
) -> PutObject | None:
    name = "the JWKS" if key.endswith("keys.json") else "the discovery document"
    if found is None:
        summary = f"publish {name}"
    elif found.owner != spec.owner:
        summary = f"replace {name} (not written by irsa-webhook)"
    else:
        reasons = [] if same_body else ["content"]
        if found.content_type != CONTENT_TYPE:
            reasons.append(f"Content-Type {found.content_type!r} -> {CONTENT_TYPE!r}")
        if found.cache_control != CACHE_CONTROL:
            reasons.append(f"Cache-Control {found.cache_control!r} -> {CACHE_CONTROL!r}")
        if not reasons:
            return None
        summary = f"update {name}: {', '.join(reasons)}"
    return PutObject(
        action="s3:PutObject",
        target=f"s3://{s3.bucket}/{key}",
        summary=summary,
        bucket=s3.bucket,
        key=key,
        body=body,
        content_type=CONTENT_TYPE,
        cache_control=CACHE_CONTROL,
        owner=spec.owner,
    )


def _provider_changes(spec: IssuerSpec, observed: ObservedIssuer, notes: list[str]) -> list[Change]:
    host = host_path(spec.issuer_url)
    provider = observed.provider
    if provider is None:
        arn = oidc_provider_arn(observed.partition, observed.account, host)
        shown = ", ".join(spec.client_ids)
        create = CreateProvider(
            action="iam:CreateOpenIDConnectProvider",
            target=arn,
            summary=f"create the OIDC provider for {host} (client IDs {shown}), tagged {OWNER_TAG}={spec.owner}",
            url=spec.issuer_url,
            client_ids=spec.client_ids,
            thumbprints=spec.thumbprints,
            tags={OWNER_TAG: spec.owner},
        )
        return [create]
    if provider.tags.get(OWNER_TAG) != spec.owner:
        notes.append(foreign_provider_note(spec, provider))
        return []
    arn = provider.arn
    # Added before removed: the provider never passes through a state with no client ID at all.
    changes: list[Change] = [
        AddClientID(
            action="iam:AddClientIDToOpenIDConnectProvider",
            target=arn,
            summary=f"add client ID {client_id}",
            provider_arn=arn,
            client_id=client_id,
        )
        for client_id in spec.client_ids
        if client_id not in provider.client_ids
    ]
    changes += [
        RemoveClientID(
            action="iam:RemoveClientIDFromOpenIDConnectProvider",
            target=arn,
            summary=f"remove client ID {client_id} (not in spec.oidcProvider.clientIDs)",
            provider_arn=arn,
            client_id=client_id,
        )
        for client_id in provider.client_ids
        if client_id not in spec.client_ids
    ]
    # Thumbprints converge only when given: with none, IAM's own trust store is used and whatever
    # the provider lists is left alone.
    if spec.thumbprints and set(spec.thumbprints) != {t.lower() for t in provider.thumbprints}:
        changes.append(
            UpdateThumbprints(
                action="iam:UpdateOpenIDConnectProviderThumbprint",
                target=arn,
                summary=f"set thumbprints to {', '.join(spec.thumbprints)}",
                diff=f"- {', '.join(provider.thumbprints) or '(none)'}\n+ {', '.join(spec.thumbprints)}",
                provider_arn=arn,
                thumbprints=spec.thumbprints,
            )
        )
    return changes


def foreign_provider_note(spec: IssuerSpec, provider: ObservedProvider) -> str:
    """What to do about an OIDC provider for the issuer that irsa-webhook does not own (never modified)."""
    owner = provider.tags.get(OWNER_TAG)
    who = "without the owner tag" if owner is None else f"owned by {owner}"
    missing = missing_client_ids(spec, provider)
    if not missing:
        return f"the OIDC provider {provider.arn} exists {who}: used as is (it lists every client ID), never modified"
    return (
        f"the OIDC provider {provider.arn} exists {who} and is never modified, but it lacks client ID "
        f"{', '.join(missing)}: add it (aws iam add-client-id-to-open-id-connect-provider), or tag the "
        f"provider {OWNER_TAG}={spec.owner} to let irsa-webhook manage it"
    )


def missing_client_ids(spec: IssuerSpec, provider: ObservedProvider) -> list[str]:
    return [client_id for client_id in spec.client_ids if client_id not in provider.client_ids]
