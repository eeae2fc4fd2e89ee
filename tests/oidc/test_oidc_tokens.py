"""Reading token claims without verifying the signature."""

from __future__ import annotations

import base64
import json

import pytest

from webhook.oidc.errors import InputError
from webhook.oidc.tokens import decode_unverified


def _segment(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _jwt(claims: object) -> str:
    return f"{_segment({'alg': 'RS256', 'kid': 'k'})}.{_segment(claims)}.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        pytest.param(
            {"iss": "https://i", "sub": "system:serviceaccount:a:b", "aud": ["sts.amazonaws.com"]},
            ("https://i", "system:serviceaccount:a:b", ("sts.amazonaws.com",)),
            id="kubernetes-token",
        ),
        pytest.param({"iss": "https://i", "aud": "x"}, ("https://i", None, ("x",)), id="aud-string-no-sub"),
        pytest.param({"iss": "https://i"}, ("https://i", None, ()), id="no-aud"),
        pytest.param({"iss": "https://i", "aud": ["a", "b"]}, ("https://i", None, ("a", "b")), id="two-aud"),
    ],
)
def test_decode(claims: dict[str, object], expected: tuple[object, ...]) -> None:
    decoded = decode_unverified(_jwt(claims) + "\n")
    assert (decoded.issuer, decoded.subject, decoded.audiences) == expected


def test_signature_is_not_checked() -> None:
    token = _jwt({"iss": "https://i", "sub": "s"}).rsplit(".", 1)[0] + ".not-a-signature"
    assert decode_unverified(token).subject == "s"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        pytest.param("abc", "expected 3 dot-separated parts, found 1", id="not-jwt"),
        pytest.param("a.b.c.d.e", "found 5", id="jwe"),
        pytest.param("a.!!!.c", "not base64url-encoded JSON", id="bad-base64"),
        pytest.param(f"a.{_segment([1])}.c", "not a JSON object", id="payload-list"),
        pytest.param(_jwt({"sub": "s"}), "no 'iss' claim", id="no-iss"),
        pytest.param(_jwt({"iss": "i", "sub": 5}), "'sub' claim is not a string", id="sub-number"),
        pytest.param(_jwt({"iss": "i", "aud": [1]}), "'aud' claim is neither", id="aud-numbers"),
    ],
)
def test_decode_errors(token: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        decode_unverified(token)
