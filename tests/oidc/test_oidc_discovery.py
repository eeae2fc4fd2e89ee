"""Issuer validation and the discovery document."""

from __future__ import annotations

import re

import pytest

from webhook.oidc.discovery import discovery_document
from webhook.oidc.errors import InputError
from webhook.oidc.issuer import host_path, port_note, validate_issuer


@pytest.mark.parametrize(
    "issuer",
    [
        pytest.param("https://oidc.example.com", id="host"),
        pytest.param("https://my-bucket.s3.us-east-1.amazonaws.com/cluster1", id="s3-path"),
        pytest.param("https://127.0.0.1:6443", id="port"),
    ],
)
def test_valid_issuers(issuer: str) -> None:
    assert validate_issuer(issuer) == issuer


@pytest.mark.parametrize(
    ("issuer", "message"),
    [
        pytest.param("", "issuer is empty", id="empty"),
        pytest.param("http://oidc.example.com", "must start with https://", id="http"),
        pytest.param("oidc.example.com", "must start with https://", id="no-scheme"),
        pytest.param("HTTPS://oidc.example.com", "must start with https://", id="uppercase-scheme"),
        pytest.param("https://", "has no host", id="no-host"),
        pytest.param(
            "https://oidc.example.com/",
            re.escape("ends with '/': remove it ('https://oidc.example.com')"),
            id="slash",
        ),
        pytest.param("https://oidc.example.com/c1/", "ends with '/'", id="path-slash"),
        pytest.param("https://oidc.example.com?x=1", "query string or fragment", id="query"),
        pytest.param("https://oidc.example.com#frag", "query string or fragment", id="fragment"),
        pytest.param("https://user:pw@oidc.example.com", "user info", id="userinfo"),
    ],
)
def test_invalid_issuers(issuer: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        validate_issuer(issuer)


@pytest.mark.parametrize(
    ("issuer", "expected"),
    [
        pytest.param("https://oidc.example.com", "oidc.example.com", id="host"),
        pytest.param("https://b.s3.amazonaws.com/c1", "b.s3.amazonaws.com/c1", id="path"),
    ],
)
def test_host_path(issuer: str, expected: str) -> None:
    assert host_path(issuer) == expected


def test_port_note() -> None:
    assert port_note("https://oidc.example.com") is None
    assert "contains a port" in (port_note("https://127.0.0.1:6443") or "")


def test_discovery_document_defaults() -> None:
    assert discovery_document("https://oidc.example.com/c1") == {
        "issuer": "https://oidc.example.com/c1",
        "jwks_uri": "https://oidc.example.com/c1/keys.json",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "iss"],
    }


def test_discovery_document_jwks_uri_and_algorithms() -> None:
    document = discovery_document("https://o.example.com", "https://keys.example.com/jwks", ["ES256", "RS256"])
    assert document["jwks_uri"] == "https://keys.example.com/jwks"
    assert document["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]


def test_discovery_document_refuses_http_jwks_uri() -> None:
    with pytest.raises(InputError, match="--jwks-uri 'http://x' must start with https://"):
        discovery_document("https://o.example.com", "http://x")
