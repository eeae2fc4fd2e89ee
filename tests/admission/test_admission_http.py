"""Bad requests over HTTP, through the composed ASGI app (no sockets): status codes and bodies."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest

from tests.support.asgi import app_of, example_app, request
from tests.support.cases import JSON_HEADERS
from tests.support.paths import SAMPLE
from webhook.sources.resolver import Resolver
from webhook.sources.store import IdentityStore

REVIEW = SAMPLE.read_bytes()


def call(method: str, path: str, app: Any = None, **kw: Any) -> httpx.Response:
    return request(app or example_app(), method, path, **kw)


def test_sample_is_mutated_over_http() -> None:
    response = call("POST", "/mutate", content=REVIEW, headers=JSON_HEADERS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["response"]["patchType"] == "JSONPatch"


def test_charset_parameter_is_fine() -> None:
    response = call("POST", "/mutate", content=REVIEW, headers={"content-type": "application/json; charset=utf-8"})
    assert response.status_code == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_get_405(method: str) -> None:
    response = call(method, "/mutate", headers=JSON_HEADERS)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "error" in response.json()


@pytest.mark.parametrize("content_type", ["text/plain", "application/yaml", ""])
def test_wrong_content_type_gets_415(content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = call("POST", "/mutate", content=REVIEW, headers=headers)
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


def test_body_over_the_limit_gets_413_by_header() -> None:
    response = call("POST", "/mutate", app=example_app(max_body=1000), content=REVIEW, headers=JSON_HEADERS)
    assert response.status_code == 413
    assert "1000" in response.json()["error"]


def test_body_over_the_limit_gets_413_while_streaming() -> None:
    def chunks() -> Any:  # no content-length: the limit is enforced as the body arrives
        yield REVIEW[:800]
        yield REVIEW[800:]

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=example_app(max_body=1000))
        async with httpx.AsyncClient(transport=transport, base_url="https://webhook") as client:

            async def agen() -> Any:
                for c in chunks():
                    yield c

            return await client.post("/mutate", content=agen(), headers=JSON_HEADERS)

    response = asyncio.run(go())
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        pytest.param(b"{not json", "not valid JSON", id="not-json"),
        pytest.param(b"", "not valid JSON", id="empty"),
        pytest.param(b"[1, 2]", "JSON list", id="array"),
        pytest.param(b'"x"', "JSON str", id="string"),
        pytest.param(b'{"apiVersion": "admission.k8s.io/v1"}', "no 'request'", id="no-request"),
        pytest.param(b'{"request": []}', "no 'request'", id="request-not-object"),
        pytest.param(b'{"request": {"kind": {}}}', "no 'uid'", id="no-uid"),
        pytest.param(b'{"request": {"uid": 7}}', "no 'uid'", id="uid-not-string"),
        pytest.param(b'{"request": {"uid": ""}}', "no 'uid'", id="uid-empty"),
        pytest.param(b"\xff\xfe", "not valid JSON", id="not-utf8"),
    ],
)
def test_malformed_bodies_get_400_naming_the_problem(body: bytes, needle: str) -> None:
    response = call("POST", "/mutate", content=body, headers=JSON_HEADERS)
    assert response.status_code == 400
    assert needle in response.json()["error"]


def test_internal_error_is_a_500_logged_with_the_uid(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr("webhook.admission.endpoint.decide", boom)
    with caplog.at_level(logging.ERROR, logger="irsa_webhook.admission"):
        response = call("POST", "/mutate", content=REVIEW, headers=JSON_HEADERS)
    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}
    record = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert record.fields["uid"] == json.loads(REVIEW)["request"]["uid"]


def test_one_log_line_per_admission(caplog: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with caplog.at_level(logging.INFO, logger="irsa_webhook.admission"):
        call("POST", "/mutate", content=REVIEW, headers=JSON_HEADERS)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"msg":"admission"' in line]
    assert len(lines) == 1
    fields = lines[0]
    assert fields["level"] == "info"
    assert fields["uid"] == json.loads(REVIEW)["request"]["uid"]
    assert fields["namespace"] == "webhook-demo"
    assert fields["pod"] == "demo-pod"
    assert fields["service_account"] == "app"
    assert fields["decision"] == "mutated"
    assert fields["role_arn"] == "arn:aws:iam::111122223333:role/demo-app"
    assert fields["duration_ms"] > 0


def test_admission_line_follows_the_log_level(caplog: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with caplog.at_level(logging.WARNING, logger="irsa_webhook.admission"):
        call("POST", "/mutate", content=REVIEW, headers=JSON_HEADERS)
    assert '"msg":"admission"' not in capsys.readouterr().err


def test_health_and_readiness() -> None:
    assert call("GET", "/healthz").status_code == 200
    ready = call("GET", "/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    not_ready = call("GET", "/readyz", app=app_of(Resolver(IdentityStore())))
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["serviceAccountCacheSynced"] is False
