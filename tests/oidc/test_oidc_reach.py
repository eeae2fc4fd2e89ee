"""The anonymous fetch of an issuer's documents, as STS makes it: real TLS, real proxy variables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.webservers import DocumentServer, connect_proxy
from webhook.oidc.reach import check_published

KIDS = ("kid-one", "kid-two")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DocumentServer]:
    docs = DocumentServer(tmp_path)
    try:
        yield docs
    finally:
        docs.stop()


def publish(
    server: DocumentServer, prefix: str = "/cluster", issuer: str | None = None, kids: tuple[str, ...] = KIDS
) -> str:
    url = server.url + prefix
    discovery = {"issuer": issuer if issuer is not None else url, "jwks_uri": f"{url}/keys.json"}
    server.documents[f"{prefix}/.well-known/openid-configuration"] = (200, json.dumps(discovery).encode())
    server.documents[f"{prefix}/keys.json"] = (200, json.dumps({"keys": [{"kid": k} for k in kids]}).encode())
    return url


@pytest.fixture
def trusted(server: DocumentServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(server.certs.ca))
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("trusted")
def test_published_documents_pass_with_every_kid(server: DocumentServer) -> None:
    result = check_published(publish(server), KIDS)
    assert result.ok, result.message
    assert result.kids == KIDS


@pytest.mark.usefixtures("trusted")
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("issuer-slash", "not"),
        ("missing-kid", "does not serve key(s) kid-three"),
        ("forbidden", "HTTP 403 (not public"),
        ("no-discovery", "HTTP 404"),
        ("not-json", "not JSON"),
    ],
)
def test_each_way_sts_would_fail_is_reported(server: DocumentServer, change: str, expected: str) -> None:
    url = publish(server)
    expected_kids: tuple[str, ...] = KIDS
    if change == "issuer-slash":
        publish(server, issuer=url + "/")
    elif change == "missing-kid":
        expected_kids = (*KIDS, "kid-three")
    elif change == "forbidden":
        server.documents["/cluster/keys.json"] = (403, b"<Error><Code>AccessDenied</Code></Error>")
    elif change == "no-discovery":
        del server.documents["/cluster/.well-known/openid-configuration"]
    elif change == "not-json":
        server.documents["/cluster/keys.json"] = (200, b"<html>")
    result = check_published(url, expected_kids)
    assert not result.ok
    assert expected in result.message


def test_an_untrusted_certificate_names_ssl_cert_file(server: DocumentServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent")
    result = check_published(publish(server), KIDS)
    assert not result.ok
    assert "SSL_CERT_FILE" in result.message


@pytest.mark.usefixtures("trusted")
def test_https_proxy_is_used_and_no_proxy_bypasses_it(server: DocumentServer, monkeypatch: pytest.MonkeyPatch) -> None:
    url = publish(server)
    with connect_proxy() as (proxy, tunnels):
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        assert check_published(url, KIDS).ok
        host = server.url.removeprefix("https://")
        assert tunnels == [host, host]  # the discovery document, then the JWKS, both tunnelled
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert check_published(url, KIDS).ok
        assert len(tunnels) == 2


@pytest.mark.usefixtures("trusted")
def test_a_dead_proxy_is_reported_not_raised(server: DocumentServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.ports import closed_port_url

    monkeypatch.setenv("HTTPS_PROXY", closed_port_url())
    result = check_published(publish(server), KIDS)
    assert not result.ok
    assert "failed" in result.message
