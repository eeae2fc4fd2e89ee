"""kube-apiserver's keys as the provisioner reads them: the JWKS it verifies with and the kid it signs
new tokens with, from a token requested for a probe ServiceAccount. Every failure is a message that
says what to do, never an exception."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.kubeapi import FakeApiServer, FakeCluster, service_account
from tests.support.ports import free_port
from webhook.kube.client import api_client
from webhook.kube.issuerkeys import JWKS_PATH, PROBE_TOKEN_SECONDS, header_kid, read_cluster_keys

JWKS = {"keys": [{"use": "sig", "kty": "RSA", "kid": "k1", "alg": "RS256", "n": "AQAB", "e": "AQAB"}]}
PROBE = ("irsa-webhook", "provisioner")
TOKEN_PATH = "/api/v1/namespaces/irsa-webhook/serviceaccounts/provisioner/token"


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster(service_accounts=[service_account(*PROBE)], jwks=JWKS, signing_kid="k1")


@pytest.fixture
def server(cluster: FakeCluster) -> Iterator[FakeApiServer]:
    with FakeApiServer(cluster) as running:
        yield running


def test_the_key_set_and_the_signing_kid(server: FakeApiServer, tmp_path: Path) -> None:
    keys = read_cluster_keys(server.api_client(tmp_path), PROBE)
    assert keys.jwks == JWKS
    assert keys.signing_kid == "k1"
    assert keys.error is None
    (request,) = [r for r in server.cluster.requests if r.path == TOKEN_PATH]
    assert request.method == "POST"
    # The shortest token the API server issues, for its own audiences (none named).
    assert request.body["spec"] == {"expirationSeconds": PROBE_TOKEN_SECONDS}
    (jwks_request,) = server.cluster.of_kind(JWKS_PATH)
    assert "application/jwk-set+json" in jwks_request.headers["Accept"]


def test_a_missing_probe_service_account_says_so_and_the_key_set_is_still_read(
    server: FakeApiServer, tmp_path: Path
) -> None:
    keys = read_cluster_keys(server.api_client(tmp_path), ("irsa-webhook", "gone"))
    assert keys.jwks == JWKS
    assert keys.signing_kid is None
    assert keys.error == (
        "cannot request a token: ServiceAccount irsa-webhook/gone not found: "
        "create it or name another probe ServiceAccount"
    )


FORBIDDEN = [
    pytest.param(
        JWKS_PATH,
        "cannot read /openid/v1/jwks: forbidden: grant the provisioner's ServiceAccount "
        "get on the non-resource URL /openid/v1/jwks",
        id="jwks",
    ),
    pytest.param(
        TOKEN_PATH,
        "cannot request a token for ServiceAccount irsa-webhook/provisioner: forbidden: grant the "
        "provisioner's ServiceAccount create on serviceaccounts/token for ServiceAccount irsa-webhook/provisioner",
        id="token",
    ),
]


@pytest.mark.parametrize(("path", "message"), FORBIDDEN)
def test_forbidden_names_what_to_grant(
    cluster: FakeCluster, server: FakeApiServer, tmp_path: Path, path: str, message: str
) -> None:
    cluster.fail[path] = 403
    keys = read_cluster_keys(server.api_client(tmp_path), PROBE)
    assert keys.error == message
    assert (keys.jwks is None) == (path == JWKS_PATH)
    assert (keys.signing_kid is None) == (path == TOKEN_PATH)


def test_a_server_error_carries_the_servers_message(
    cluster: FakeCluster, server: FakeApiServer, tmp_path: Path
) -> None:
    cluster.fail[JWKS_PATH] = 500
    keys = read_cluster_keys(server.api_client(tmp_path), PROBE)
    assert keys.error == "cannot read /openid/v1/jwks: HTTP 500: /openid/v1/jwks is scripted to fail"


@pytest.mark.parametrize(
    "served",
    [{"keys": "k1"}, {"nokeys": []}, ["k1"], {"keys": ["k1"]}],
    ids=["string", "absent", "list", "not-objects"],
)
def test_a_malformed_key_set_is_reported(
    cluster: FakeCluster, server: FakeApiServer, tmp_path: Path, served: Any
) -> None:
    cluster.jwks = served
    keys = read_cluster_keys(server.api_client(tmp_path), PROBE)
    assert keys.jwks is None
    assert keys.error == "/openid/v1/jwks is not a JSON Web Key Set (no list of keys)"
    assert keys.signing_kid == "k1"


def test_an_unreachable_api_server_is_a_message_not_an_exception(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "down.kubeconfig"
    server = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    keys = read_cluster_keys(api_client(str(kubeconfig)), PROBE)
    assert keys.jwks is None
    assert keys.signing_kid is None
    assert keys.error is not None
    assert keys.error.startswith("cannot read /openid/v1/jwks: ")
    assert "check that the API server is reachable" in keys.error
    assert "cannot request a token for ServiceAccount irsa-webhook/provisioner: " in keys.error


def test_without_a_probe_the_signing_key_is_unknown_and_says_why(server: FakeApiServer, tmp_path: Path) -> None:
    keys = read_cluster_keys(server.api_client(tmp_path), None)
    assert keys.jwks == JWKS
    assert keys.signing_kid is None
    assert keys.error == "no probe ServiceAccount is configured: the signing key cannot be checked"
    assert not server.cluster.of_kind(TOKEN_PATH)


def test_the_token_is_never_logged(server: FakeApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    read_cluster_keys(server.api_client(tmp_path), PROBE)
    assert "not-a-signature" not in caplog.text
    assert base64.urlsafe_b64encode(b"not-a-signature").decode().rstrip("=") not in caplog.text


def _jws(header: Any) -> str:
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("=")
    return f"{encoded}.eyJzdWIiOiJ4In0.c2ln"


@pytest.mark.parametrize(
    ("token", "kid"),
    [
        pytest.param(_jws({"alg": "RS256", "kid": "abc-_1"}), "abc-_1", id="kid"),
        pytest.param(_jws({"alg": "RS256"}), None, id="no-kid"),
        pytest.param(_jws({"alg": "RS256", "kid": ""}), None, id="empty-kid"),
        pytest.param(_jws({"alg": "RS256", "kid": 7}), None, id="number-kid"),
        pytest.param(_jws(["kid"]), None, id="header-not-an-object"),
        pytest.param("%%%.x.y", None, id="not-base64"),
        pytest.param("bm90IGpzb24.x.y", None, id="not-json"),
    ],
)
def test_header_kid(token: str, kid: str | None) -> None:
    assert header_kid(token) == kid
