"""kid derivation and JWK encoding, checked against independent computations."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.oidckeys import EC_KID, RSA_KID, TESTDATA
from webhook.oidc.jwks import b64url, jwk, jwks, key_id, signing_algorithms
from webhook.oidc.keys import load_public_keys

# Computed with openssl alone (testdata/README.md), never with this code.
RSA_N = (
    "pzmKvYS04sx1oENIQaEKqa_Julq9_ough2GHK4MdAbLrGHTz0NsmBXzOdODGd2inLVJjrFSdyedOXM-26olgM5MRWVTqKXeQxO3tRXk"
    "NK-H2RBZCOxKmPbbEjOV8GSCcXqF0w1333iw7zchCyEZhS0iT32dNXO6CH5I_MenKFaBwdq1UNvZl5S94tx0e22EpT2rNGxEMwx1EhX"
    "G8wQundS2klUKmdmTXj5OZC-aMKkPETkDj25d6MvrKz23J1STUlQenabLQRtlHXfTttlLxTgih9kwg_tmAfWWlIMSX0OzDiY8iHJM7zVd"
    "2o0lmVpkGxs9MckaVnKXbsQ2cb7V9CQ"
)
EC_X = "mnZdkqOilVefhSsuFnqy-L90P8DUXgh2e022cCy4k4k"
EC_Y = "owxdTtJYmh9ianTndOIRbWTKH6fupzjOZjQ-24q4bg8"


def _key(name: str) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    return load_public_keys((TESTDATA / name).read_bytes())[0].key


def _independent_kid(public_pem: bytes) -> str:
    """kid from the PEM text with hashlib and base64 only: the PEM body *is* the DER SPKI."""
    body = re.sub(rb"-----[^-]+-----|\s", b"", public_pem)
    digest = hashlib.sha256(base64.b64decode(body)).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        pytest.param("rsa-public.pem", RSA_KID, id="rsa-public"),
        pytest.param("rsa-private.pem", RSA_KID, id="rsa-private-same-kid"),
        pytest.param("ec-public.pem", EC_KID, id="ec-public"),
        pytest.param("ec-private.pem", EC_KID, id="ec-private-same-kid"),
    ],
)
def test_kid_known_vectors(file: str, expected: str) -> None:
    assert key_id(_key(file)) == expected


@pytest.mark.parametrize("file", [pytest.param("rsa-public.pem", id="rsa"), pytest.param("ec-public.pem", id="ec")])
def test_kid_matches_independent_computation(file: str) -> None:
    pem = (TESTDATA / file).read_bytes()
    assert key_id(_key(file)) == _independent_kid(pem)


def test_kid_of_fresh_keys_matches_independent_computation() -> None:
    from webhook.oidc.keys import KeyType, generate_key_pair

    key_types: tuple[KeyType, ...] = ("rsa", "ec")
    for key_type in key_types:
        pair = generate_key_pair(key_type)
        assert key_id(load_public_keys(pair.public_pem)[0].key) == _independent_kid(pair.public_pem)


def test_kid_is_unpadded_base64url_of_32_bytes() -> None:
    kid = key_id(_key("rsa-public.pem"))
    assert len(kid) == 43  # ceil(32 * 4 / 3) without padding
    assert re.fullmatch(r"[A-Za-z0-9_-]+", kid)


def test_rsa_jwk_fields_in_kube_apiserver_order() -> None:
    entry = jwk(_key("rsa-public.pem"))
    assert entry == {"use": "sig", "kty": "RSA", "kid": RSA_KID, "alg": "RS256", "n": RSA_N, "e": "AQAB"}
    assert list(entry) == ["use", "kty", "kid", "alg", "n", "e"]


def test_ec_jwk_fields() -> None:
    entry = jwk(_key("ec-public.pem"))
    assert entry == {
        "use": "sig",
        "kty": "EC",
        "kid": EC_KID,
        "alg": "ES256",
        "crv": "P-256",
        "x": EC_X,
        "y": EC_Y,
    }


@pytest.mark.parametrize(
    ("curve", "alg", "crv", "size"),
    [
        pytest.param(ec.SECP256R1(), "ES256", "P-256", 32, id="p256"),
        pytest.param(ec.SECP384R1(), "ES384", "P-384", 48, id="p384"),
        pytest.param(ec.SECP521R1(), "ES512", "P-521", 66, id="p521"),
    ],
)
def test_ec_coordinates_are_padded_to_curve_size(curve: ec.EllipticCurve, alg: str, crv: str, size: int) -> None:
    # Find a key whose x has a leading zero byte, where minimal encoding would be one byte short.
    for _ in range(2000):
        key = ec.generate_private_key(curve).public_key()
        if key.public_numbers().x.bit_length() <= (size - 1) * 8:
            break
    else:  # pragma: no cover - probability ~ (255/256)^2000
        pytest.fail("no key with a short x coordinate found")
    entry = jwk(key)
    assert (entry["alg"], entry["crv"]) == (alg, crv)
    x = base64.urlsafe_b64decode(entry["x"] + "==")
    y = base64.urlsafe_b64decode(entry["y"] + "==")
    assert len(x) == len(y) == size
    assert int.from_bytes(x, "big") == key.public_numbers().x


def test_rsa_exponent_is_minimal_bytes() -> None:
    key = rsa.generate_private_key(public_exponent=3, key_size=1024).public_key()
    assert jwk(key)["e"] == "Aw"


def test_jwks_keeps_order_and_drops_duplicates() -> None:
    rsa_key, ec_key = _key("rsa-public.pem"), _key("ec-public.pem")
    document = jwks([rsa_key, ec_key, _key("rsa-private.pem")])
    assert [entry["kid"] for entry in document["keys"]] == [RSA_KID, EC_KID]


def test_signing_algorithms_are_sorted_and_distinct() -> None:
    keys = [_key("rsa-public.pem"), _key("ec-public.pem"), _key("rsa-private.pem")]
    assert signing_algorithms(keys) == ["ES256", "RS256"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"", "", id="empty"),
        pytest.param(b"\xfb\xff", "-_8", id="url-alphabet-no-padding"),
        pytest.param(b"\x01\x00\x01", "AQAB", id="65537"),
    ],
)
def test_b64url(data: bytes, expected: str) -> None:
    assert b64url(data) == expected
