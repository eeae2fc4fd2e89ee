"""The JSON Web Key Set an OIDC relying party (here: AWS STS) fetches to verify tokens.

Each key is written the way kube-apiserver writes it at ``/openid/v1/jwks``, so the published
file and the server's own endpoint agree field for field:

* ``kid`` = unpadded base64url of the SHA-256 of the key's DER SubjectPublicKeyInfo. This is how
  kube-apiserver derives the key ID it puts in every token header (``keyIDFromPublicKey`` in
  k8s.io/kubernetes pkg/serviceaccount/jwt.go); STS picks the verification key by this ``kid``,
  so any other derivation makes every token fail.
* ``use: sig``, ``kty``, ``alg`` (RS256, or ES256/384/512 by curve).
* RSA: ``n`` and ``e`` as unpadded base64url of their minimal big-endian bytes (RFC 7518 6.3.1).
* EC: ``crv`` and ``x``, ``y`` padded to the curve's coordinate size (RFC 7518 6.2.1.2 requires
  the full length: 32 bytes for P-256, 48 for P-384, 66 for P-521).

Several keys are published together during rotation (the old key verifies tokens already
issued while the new one signs); the same key given twice appears once.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from webhook.oidc.keys import EC_CURVE_NAMES, PublicKey, public_key_der, signing_algorithm

JSONObject = dict[str, Any]


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2), the encoding of every binary JOSE field."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def key_id(key: PublicKey) -> str:
    """The ``kid`` kube-apiserver gives ``key``: b64url(SHA-256(DER SubjectPublicKeyInfo))."""
    return b64url(hashlib.sha256(public_key_der(key)).digest())


def _int_bytes(value: int, length: int | None = None) -> bytes:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


def jwk(key: PublicKey) -> JSONObject:
    """One JWK for ``key``, fields in kube-apiserver's order (use, kty, kid, alg, key material)."""
    entry: JSONObject = {"use": "sig"}
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        entry |= {"kty": "RSA", "kid": key_id(key), "alg": signing_algorithm(key)}
        entry |= {"n": b64url(_int_bytes(numbers.n)), "e": b64url(_int_bytes(numbers.e))}
        return entry
    if isinstance(key, ec.EllipticCurvePublicKey):
        point = key.public_numbers()
        size = (key.curve.key_size + 7) // 8
        entry |= {"kty": "EC", "kid": key_id(key), "alg": signing_algorithm(key)}
        entry |= {"crv": EC_CURVE_NAMES[key.curve.name]}
        entry |= {"x": b64url(_int_bytes(point.x, size)), "y": b64url(_int_bytes(point.y, size))}
        return entry
    raise TypeError(f"unsupported key {type(key).__name__}")  # keys.load_public_keys prevents this


def jwks(keys: Iterable[PublicKey]) -> JSONObject:
    """The key set ``{"keys": [...]}`` for ``keys`` in the given order, each key once."""
    entries: list[JSONObject] = []
    seen: set[str] = set()
    for key in keys:
        entry = jwk(key)
        if entry["kid"] not in seen:
            seen.add(entry["kid"])
            entries.append(entry)
    return {"keys": entries}


def signing_algorithms(keys: Iterable[PublicKey]) -> list[str]:
    """The distinct ``alg`` values of ``keys``, sorted (what the discovery document advertises)."""
    return sorted({signing_algorithm(key) for key in keys})
