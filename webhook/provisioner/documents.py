"""The documents the issuer publishes (discovery, JWKS, the bucket policy statement) and how they are compared.

Nothing is rewritten because its bytes differ: AWS hands documents back re-serialised (IAM URL-encodes
policies, S3 may reorder keys, another tool indents differently), and a byte comparison would write on
every resync (ACK community#1869, Crossplane #2075). Two documents are the same when
:func:`canonical` gives the same value:

* strings are compared URL-decoded (``%3A`` is ``:``);
* object keys in any order;
* a list is a set of canonical members (order and repeats ignored), and a one-member set is its
  member: ``"s3:GetObject"`` equals ``["s3:GetObject"]``, as IAM reads them;
* numbers, booleans and null are compared by type and value (``true`` is not ``1``).

A JWKS is a set of keys, each compared as canonical JSON. The discovery document is compared as
parsed JSON, strictly: its ``issuer`` must match the tokens' ``iss`` byte for byte.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Hashable, Iterable, Sequence
from typing import Any
from urllib.parse import unquote

from webhook.oidc.discovery import DISCOVERY_PATH, discovery_document
from webhook.oidc.jwks import jwk
from webhook.oidc.keys import load_public_keys
from webhook.provisioner.model import JSON, IssuerSpec, S3Discovery

JWK = dict[str, Any]

JWKS_PATH = "keys.json"  # the file name upstream's self-hosted guide and the EKS issuers use
CONTENT_TYPE = "application/json"
# Five minutes: how long STS (and any cache between) may keep a key set. Short, so a new key is
# usable soon after it is published; explicit, so no proxy picks its own heuristic lifetime.
CACHE_MAX_AGE = 300
CACHE_CONTROL = f"max-age={CACHE_MAX_AGE}"
POLICY_VERSION = "2012-10-17"
SID_PREFIX = "IRSAWebhook"


# --- documents ------------------------------------------------------------------------------------


def _dump(document: object) -> bytes:
    """Indented (readable with ``aws s3 cp ... -``), key order as built, one trailing newline: stable."""
    return (json.dumps(document, indent=2) + "\n").encode()


def discovery_body(spec: IssuerSpec, algorithms: Sequence[str]) -> bytes:
    """The discovery document for ``spec.issuer_url`` advertising ``algorithms``."""
    return _dump(discovery_document(spec.issuer_url, algorithms=sorted(set(algorithms))))


def jwks_body(keys: Sequence[JWK]) -> bytes:
    """The JWKS ``{"keys": [...]}`` of ``keys`` in the given order, each ``kid`` once (the first wins)."""
    return _dump({"keys": unique_keys(keys)})


def unique_keys(keys: Iterable[JWK]) -> list[JWK]:
    seen: set[str] = set()
    out = []
    for key in keys:
        if key.get("kid") not in seen:
            seen.add(key.get("kid", ""))
            out.append(key)
    return out


def static_jwks(spec: IssuerSpec) -> list[JWK]:
    """The JWKs of the keys given in the object (already checked by ``read_issuer``)."""
    return [jwk(loaded.key) for pem in spec.public_keys for loaded in load_public_keys(pem.encode(), "spec.keys")]


def cluster_keys(cluster_jwks: JSON | None) -> list[JWK] | None:
    """The keys of kube-apiserver's ``/openid/v1/jwks``; None when it is unknown or not a key set."""
    if not isinstance(cluster_jwks, dict) or not isinstance(cluster_jwks.get("keys"), list):
        return None
    keys = cluster_jwks["keys"]
    if not all(isinstance(key, dict) and isinstance(key.get("kid"), str) and key["kid"] for key in keys):
        return None  # a key without a kid cannot be selected by STS: do not publish a set we cannot name
    return list(keys)


def desired_jwks(spec: IssuerSpec, cluster_jwks: JSON | None) -> list[JWK] | None:
    """The keys to publish: kube-apiserver's, then the static ones (``Static``: only those).

    None when the source is ``APIServer`` and its key set is unknown: publishing the static keys
    alone would drop every key the cluster verifies with.
    """
    static = static_jwks(spec)
    if spec.key_source == "Static":
        return unique_keys(static)
    served = cluster_keys(cluster_jwks)
    if served is None:
        return None
    return unique_keys([*served, *static])


def algorithms(keys: Iterable[JWK]) -> list[str]:
    """The distinct ``alg`` values of ``keys``, sorted (the discovery document advertises them)."""
    return sorted({key["alg"] for key in keys if isinstance(key.get("alg"), str)})


def kids(keys: Iterable[JWK]) -> list[str]:
    return [key["kid"] for key in keys if isinstance(key.get("kid"), str)]


def parse_json(body: bytes | None) -> Any:
    """``body`` parsed, or None when it is absent or not JSON."""
    if body is None:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def body_kids(body: bytes | None) -> list[str] | None:
    """The kids of a published JWKS body; None when it is absent or not a key set."""
    document = parse_json(body)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        return None
    return kids(key for key in document["keys"] if isinstance(key, dict))


# --- the bucket policy ----------------------------------------------------------------------------


def statement_id(s3: S3Discovery) -> str:
    """Ours alone: two issuers sharing a bucket under different prefixes each keep their own statement."""
    return SID_PREFIX + hashlib.sha256(f"{s3.bucket}/{s3.prefix}".encode()).hexdigest()[:16]


def object_keys(s3: S3Discovery) -> tuple[str, str]:
    """The discovery document's key and the JWKS key, in that order."""
    return s3.key(DISCOVERY_PATH), s3.key(JWKS_PATH)


def policy_statement(spec: IssuerSpec, partition: str) -> JSON:
    """Anonymous ``s3:GetObject`` on exactly the two published objects, nothing else in the bucket."""
    assert spec.s3 is not None, "only an issuer published to S3 has a bucket policy"
    s3 = spec.s3
    return {
        "Sid": statement_id(s3),
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": [f"arn:{partition}:s3:::{s3.bucket}/{key}" for key in object_keys(s3)],
    }


def _statements(policy: JSON) -> list[Any]:
    statements = policy.get("Statement", [])
    return list(statements) if isinstance(statements, list) else [statements]


def _is_ours(statement: object, sid: str) -> bool:
    return isinstance(statement, dict) and isinstance(statement.get("Sid"), str) and unquote(statement["Sid"]) == sid


def merged_bucket_policy(existing: JSON | None, statement: JSON) -> JSON:
    """``existing`` with our statement in place of the one with its Sid (or appended); others kept as they are."""
    if existing is None:
        return {"Version": POLICY_VERSION, "Statement": [statement]}
    statements = _statements(existing)
    mine = [index for index, item in enumerate(statements) if _is_ours(item, statement["Sid"])]
    if mine:
        statements[mine[0]] = statement
        statements = [item for index, item in enumerate(statements) if index not in mine[1:]]
    else:
        statements.append(statement)
    return {"Version": POLICY_VERSION, **existing, "Statement": statements}


def without_our_statement(existing: JSON | None, sid: str) -> JSON | None:
    """``existing`` without the statement ``sid``; None when no statement is left (delete the policy)."""
    if existing is None:
        return None
    statements = [item for item in _statements(existing) if not _is_ours(item, sid)]
    if not statements:
        return None
    return {**existing, "Statement": statements}


def has_statement(policy: JSON | None, sid: str) -> bool:
    return policy is not None and any(_is_ours(item, sid) for item in _statements(policy))


def load_policy(text: str) -> JSON:
    """A policy document as AWS returns it: plain JSON (S3) or URL-encoded JSON (IAM)."""
    try:
        document = json.loads(text)
    except ValueError:
        document = json.loads(unquote(text))
    if not isinstance(document, dict):
        raise ValueError("a policy document is a JSON object")
    return document


# --- semantic comparison --------------------------------------------------------------------------


def canonical(value: object) -> Hashable:
    """A hashable value equal for two documents exactly when they mean the same (module docstring)."""
    if isinstance(value, str):
        return ("s", unquote(value))
    if isinstance(value, dict):
        return ("o", frozenset((unquote(str(key)), canonical(item)) for key, item in value.items()))
    if isinstance(value, list):
        members = frozenset(canonical(item) for item in value)
        return next(iter(members)) if len(members) == 1 else ("l", members)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    return ("z", None)


def same_json(a: object, b: object) -> bool:
    return canonical(a) == canonical(b)


def same_policy(a: JSON | None, b: JSON | None) -> bool:
    """Semantic equality of two policy documents (None: no policy; equal only to None)."""
    if a is None or b is None:
        return a is b
    return same_json(a, b)


def _key_set(keys: JSON | Sequence[JWK] | None) -> frozenset[str]:
    if isinstance(keys, dict):
        keys = keys.get("keys") if isinstance(keys.get("keys"), list) else []
    return frozenset(json.dumps(key, sort_keys=True) for key in keys or ())


def same_jwks(a: JSON | Sequence[JWK] | None, b: JSON | Sequence[JWK] | None) -> bool:
    """Same set of keys (each compared as canonical JSON); a JWKS document or a list of keys."""
    return _key_set(a) == _key_set(b)


def readable(document: object) -> str:
    """Indented JSON, keys sorted, strings URL-decoded: the text a diff is made of."""
    return json.dumps(_decoded(document), indent=2, sort_keys=True)


def _decoded(value: object) -> object:
    if isinstance(value, str):
        return unquote(value)
    if isinstance(value, dict):
        return {unquote(str(key)): _decoded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decoded(item) for item in value]
    return value


def json_diff(before: object, after: object, name: str) -> str:
    """A unified diff of the readable forms of ``before`` (None: absent) and ``after``."""
    old = [] if before is None else readable(before).splitlines()
    new = [] if after is None else readable(after).splitlines()
    return "\n".join(difflib.unified_diff(old, new, f"{name} (now)", f"{name} (planned)", lineterm=""))


def jwks_diff(before: Sequence[JWK], after: Sequence[JWK]) -> str:
    """``+ kid X`` / ``- kid Y`` / ``~ kid Z (key material changed)``, one line each."""
    old = {key.get("kid"): json.dumps(key, sort_keys=True) for key in before}
    new = {key.get("kid"): json.dumps(key, sort_keys=True) for key in after}
    lines = [f"+ kid {kid}" for kid in new if kid not in old]
    lines += [f"- kid {kid}" for kid in old if kid not in new]
    lines += [f"~ kid {kid} (key material changed)" for kid in new if kid in old and old[kid] != new[kid]]
    return "\n".join(lines)
