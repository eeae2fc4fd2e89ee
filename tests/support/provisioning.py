"""The provisioner's pure tests: AWS state as plain YAML, an in-memory AWS that applies changes, cluster keys.

The state a planner case starts from is written (or patched) as YAML, the way a person reads it
back from ``aws s3api`` and ``aws iam``:

    account: "111122223333"
    partition: aws
    bucket: {name, exists, region, owner, publicAccessBlock: {blockPublicAcls, ...} | null,
             policy: {...} | null, otherObjects, objects: {<key>: {body, contentType, cacheControl, owner}}}
    provider: {arn, url, clientIDs, thumbprints, tags} | null

:func:`apply_changes` is an in-memory AWS: it makes a plan's changes on such a state the way S3 and
IAM would (a new bucket gets AWS's default public access block, all four settings on), and it
refuses what the provisioner must never do whatever the plan says: delete or modify anything that
does not carry the owner, delete a bucket that is not empty, write a key set without keys.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from webhook.oidc.issuer import host_path
from webhook.oidc.jwks import jwk
from webhook.oidc.keys import load_public_keys
from webhook.provisioner.model import (
    OWNER_TAG,
    AddClientID,
    Change,
    ClusterKeys,
    CreateBucket,
    CreateProvider,
    DeleteBucket,
    DeleteBucketPolicy,
    DeleteObject,
    DeleteProvider,
    IssuerSpec,
    ObservedBucket,
    ObservedIssuer,
    ObservedObject,
    ObservedProvider,
    PublicAccessBlock,
    PutBucketPolicy,
    PutObject,
    PutPublicAccessBlock,
    RemoveClientID,
    TagProvider,
    UpdateThumbprints,
)
from webhook.provisioner.planner import plan_issuer

from .oidckeys import EC_KID, RSA_KID, TESTDATA

ACCOUNT = "111122223333"
KEY_FILES = {"rsa": "rsa-public.pem", "ec": "ec-public.pem"}
KIDS = {"rsa": RSA_KID, "ec": EC_KID}
CLUSTER = "test"
_BLOCK_FIELDS = {
    "blockPublicAcls": "block_public_acls",
    "ignorePublicAcls": "ignore_public_acls",
    "blockPublicPolicy": "block_public_policy",
    "restrictPublicBuckets": "restrict_public_buckets",
}


def public_pem(name: str) -> str:
    """The PEM text of the test key ``name`` (``rsa`` or ``ec``)."""
    return (TESTDATA / KEY_FILES[name]).read_text()


def with_test_keys(value: Any) -> Any:
    """``value`` with ``@rsa`` / ``@ec`` replaced by the PEM text of that public test key, and
    ``@testdata:<file>`` by the text of that file of ``tests/oidc/testdata`` (YAML cases name keys)."""
    if isinstance(value, str) and value.startswith("@testdata:"):
        return (TESTDATA / value.removeprefix("@testdata:")).read_text()
    if isinstance(value, str) and value.startswith("@"):
        return public_pem(value[1:])
    if isinstance(value, list):
        return [with_test_keys(item) for item in value]
    if isinstance(value, dict):
        return {key: with_test_keys(item) for key, item in value.items()}
    return value


def jwk_of(name: str) -> dict[str, Any]:
    """The JWK kube-apiserver serves for the test key ``name``."""
    return jwk(load_public_keys(public_pem(name).encode())[0].key)


def cluster_keys(keys: Sequence[str] | None, signing: str | None = None, error: str | None = None) -> ClusterKeys:
    """kube-apiserver serving the test keys ``keys`` (None: its JWKS could not be read), signing with ``signing``."""
    jwks = None if keys is None else {"keys": [jwk_of(name) for name in keys]}
    return ClusterKeys(jwks=jwks, signing_kid=KIDS[signing] if signing else None, error=error)


def issuer_object(spec: Mapping[str, Any], name: str = "main", generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "irsa-webhook.io/v1alpha1",
        "kind": "IRSAIssuer",
        "metadata": {"name": name, "generation": generation},
        "spec": copy.deepcopy(dict(spec)),
    }


# --- the state as YAML ----------------------------------------------------------------------------


def empty_state(spec: IssuerSpec) -> dict[str, Any]:
    """Nothing of ours in AWS. A bucket the issuer may not create exists already (the user's own,
    untagged, with AWS's default public access block); one it may create does not."""
    state: dict[str, Any] = {"account": ACCOUNT, "partition": "aws", "bucket": None, "provider": None}
    if spec.s3 is not None:
        exists = not spec.s3.create_bucket
        state["bucket"] = {"name": spec.s3.bucket, "exists": exists, "region": spec.s3.region}
        if exists:
            state["bucket"]["publicAccessBlock"] = dict.fromkeys(_BLOCK_FIELDS, True)
    return state


def observed_from(state: Mapping[str, Any], cluster: ClusterKeys) -> ObservedIssuer:
    bucket = state.get("bucket")
    provider = state.get("provider")
    return ObservedIssuer(
        account=state.get("account", ACCOUNT),
        partition=state.get("partition", "aws"),
        bucket=None if bucket is None else _bucket(bucket),
        provider=None
        if provider is None
        else ObservedProvider(
            arn=provider["arn"],
            url=provider["url"],
            client_ids=tuple(provider.get("clientIDs") or ()),
            thumbprints=tuple(provider.get("thumbprints") or ()),
            tags=dict(provider.get("tags") or {}),
        ),
        cluster=cluster,
    )


def _bucket(raw: Mapping[str, Any]) -> ObservedBucket:
    block = raw.get("publicAccessBlock")
    objects = {
        key: None
        if item is None
        else ObservedObject(
            body=item["body"].encode(),
            content_type=item.get("contentType"),
            cache_control=item.get("cacheControl"),
            owner=item.get("owner"),
        )
        for key, item in (raw.get("objects") or {}).items()
    }
    return ObservedBucket(
        name=raw["name"],
        exists=raw.get("exists", True),
        region=raw.get("region"),
        owner=raw.get("owner"),
        public_access_block=None
        if block is None
        else PublicAccessBlock(**{field: block.get(name, True) for name, field in _BLOCK_FIELDS.items()}),
        policy=copy.deepcopy(raw.get("policy")),
        objects=objects,
        other_objects=raw.get("otherObjects", False),
    )


def state_of(observed: ObservedIssuer) -> dict[str, Any]:
    """The YAML form of ``observed`` (without the cluster part)."""
    state: dict[str, Any] = {"account": observed.account, "partition": observed.partition}
    bucket = observed.bucket
    state["bucket"] = None
    if bucket is not None:
        block = bucket.public_access_block
        state["bucket"] = {
            "name": bucket.name,
            "exists": bucket.exists,
            "region": bucket.region,
            "owner": bucket.owner,
            "publicAccessBlock": None
            if block is None
            else {name: getattr(block, field) for name, field in _BLOCK_FIELDS.items()},
            "policy": copy.deepcopy(bucket.policy),
            "otherObjects": bucket.other_objects,
            "objects": {
                key: {
                    "body": item.body.decode(),
                    "contentType": item.content_type,
                    "cacheControl": item.cache_control,
                    "owner": item.owner,
                }
                for key, item in bucket.objects.items()
                if item is not None
            },
        }
    provider = observed.provider
    state["provider"] = None
    if provider is not None:
        state["provider"] = {
            "arn": provider.arn,
            "url": provider.url,
            "clientIDs": list(provider.client_ids),
            "thumbprints": list(provider.thumbprints),
            "tags": dict(provider.tags),
        }
    return state


def converged(spec: IssuerSpec, cluster: ClusterKeys) -> dict[str, Any]:
    """An account where ``spec`` was applied once (in memory), starting from :func:`empty_state`."""
    plan = plan_issuer(spec, observed_from(empty_state(spec), cluster))
    assert plan.blocked is None, plan.blocked
    state = apply_changes(empty_state(spec), plan.changes, spec.owner)
    assert plan_issuer(spec, observed_from(state, cluster)).changes == (), "one apply does not converge"
    return state


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: mappings merge, ``null`` removes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- the in-memory AWS ----------------------------------------------------------------------------


class Refused(AssertionError):
    """The plan asked for something the provisioner must never do."""


def apply_changes(state: Mapping[str, Any], changes: Iterable[Change], owner: str) -> dict[str, Any]:
    """``state`` (YAML form) after ``changes``, made as S3 and IAM would make them."""
    result = copy.deepcopy(dict(state))
    for change in changes:
        _apply(result, change, owner)
    return result


def _apply(state: dict[str, Any], change: Change, owner: str) -> None:
    bucket = state.get("bucket")
    provider = state.get("provider")
    if isinstance(change, CreateBucket):
        assert bucket is not None, "CreateBucket for a bucket the issuer does not name"
        assert not bucket["exists"], "CreateBucket on a bucket that exists"
        state["bucket"] = {
            "name": change.bucket,
            "exists": True,
            "region": change.region,
            "owner": change.tags.get(OWNER_TAG),
            "publicAccessBlock": dict.fromkeys(_BLOCK_FIELDS, True),  # S3's default since April 2023
            "policy": None,
            "objects": {},
        }
    elif isinstance(change, PutPublicAccessBlock):
        _exists(bucket, change.bucket)["publicAccessBlock"] = {
            name: getattr(change.block, field) for name, field in _BLOCK_FIELDS.items()
        }
    elif isinstance(change, PutBucketPolicy):
        _exists(bucket, change.bucket)["policy"] = json.loads(json.dumps(change.policy))
    elif isinstance(change, DeleteBucketPolicy):
        _exists(bucket, change.bucket)["policy"] = None
    elif isinstance(change, PutObject):
        if change.key.endswith("keys.json") and not json.loads(change.body)["keys"]:
            raise Refused(f"a key set without keys written to {change.target}")
        objects = _exists(bucket, change.bucket).setdefault("objects", {})
        objects[change.key] = {
            "body": change.body.decode(),
            "contentType": change.content_type,
            "cacheControl": change.cache_control,
            "owner": change.owner,
        }
    elif isinstance(change, DeleteObject):
        objects = _exists(bucket, change.bucket).get("objects") or {}
        if (objects.get(change.key) or {}).get("owner") != owner:
            raise Refused(f"{change.target} deleted without our owner metadata")
        objects.pop(change.key)
    elif isinstance(change, DeleteBucket):
        found = _exists(bucket, change.bucket)
        if found.get("owner") != owner:
            raise Refused(f"bucket {change.bucket} deleted without our owner tag")
        if found.get("objects") or found.get("otherObjects"):
            raise Refused(f"bucket {change.bucket} deleted while not empty (S3: BucketNotEmpty)")
        state["bucket"] = {"name": change.bucket, "exists": False}
    elif isinstance(change, CreateProvider):
        assert provider is None, "CreateProvider for a provider that exists"
        assert change.target.endswith(":oidc-provider/" + host_path(change.url)), change.target
        state["provider"] = {
            "arn": change.target,
            "url": host_path(change.url),
            "clientIDs": list(change.client_ids),
            "thumbprints": list(change.thumbprints),
            "tags": dict(change.tags),
        }
    else:
        _apply_provider(state, change, owner)


def _exists(bucket: dict[str, Any] | None, name: str) -> dict[str, Any]:
    assert bucket is not None, f"bucket {name} is not the issuer's"
    assert bucket["name"] == name, f"bucket {name} is not the issuer's"
    assert bucket["exists"], f"bucket {name} does not exist"
    return bucket


def _apply_provider(state: dict[str, Any], change: Change, owner: str) -> None:
    provider = state.get("provider")
    assert provider is not None, f"no provider {change.target}"
    assert provider["arn"] == change.target, f"no provider {change.target}"
    if provider["tags"].get(OWNER_TAG) != owner and not isinstance(change, TagProvider):
        raise Refused(f"{change.action} on {change.target}, which does not carry our owner tag")
    if isinstance(change, AddClientID):
        assert change.client_id not in provider["clientIDs"], "client ID added twice"
        provider["clientIDs"].append(change.client_id)
    elif isinstance(change, RemoveClientID):
        provider["clientIDs"].remove(change.client_id)
        assert provider["clientIDs"], "the provider's last client ID removed"
    elif isinstance(change, UpdateThumbprints):
        provider["thumbprints"] = list(change.thumbprints)
    elif isinstance(change, TagProvider):
        provider["tags"].update(change.tags)
    elif isinstance(change, DeleteProvider):
        state["provider"] = None
    else:
        raise AssertionError(f"the in-memory AWS does not know {type(change).__name__}")
