"""Reading the claims of a projected service-account token, WITHOUT verifying its signature.

``trust-policy check --token`` asks "would IAM's trust policy accept a token with these claims?",
not "is this token authentic?": STS verifies the signature against the published JWKS, and a
policy check must also work for a token copied out of a pod with no access to the keys. So this
module only base64url-decodes the JWT payload (RFC 7519 section 7.2 steps 1-7 minus the signature)
and reads ``iss``, ``sub`` and ``aud``. Never use it to make an authentication decision.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from webhook.oidc.errors import InputError


@dataclass(frozen=True)
class TokenClaims:
    """The claims a web-identity trust policy can look at."""

    issuer: str
    subject: str | None
    audiences: tuple[str, ...]  # "aud" is a string or a list in JWTs; always a tuple here


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def decode_unverified(token: str) -> TokenClaims:
    """The claims of the compact JWS ``token``; raises InputError if it is not a readable JWT."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise InputError(f"the token is not a JWT: expected 3 dot-separated parts, found {len(parts)}")
    try:
        payload = json.loads(_b64url_decode(parts[1]))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"the token's payload is not base64url-encoded JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise InputError("the token's payload is not a JSON object")
    issuer = payload.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise InputError("the token has no 'iss' claim")
    subject = payload.get("sub")
    if subject is not None and not isinstance(subject, str):
        raise InputError("the token's 'sub' claim is not a string")
    return TokenClaims(issuer=issuer, subject=subject, audiences=_audiences(payload.get("aud")))


def _audiences(aud: object) -> tuple[str, ...]:
    if aud is None:
        return ()
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and all(isinstance(item, str) for item in aud):
        return tuple(aud)
    raise InputError("the token's 'aud' claim is neither a string nor a list of strings")
