"""Upstream's metrics and debugging handler on the metrics port of a real ``serve`` process: every
upstream series by name, TYPE line and labels, exactly as its Go client exposes them; Pod Identity
mutations counted as ``container_credentials``; ``/debug/alpha/cache`` as upstream's JSON."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cases import JSON_HEADERS, review_of
from tests.support.server import Server, start_server
from webhook.admission.endpoint import MutateEndpoint
from webhook.core.records import Identity
from webhook.core.settings import Settings
from webhook.observe import metrics
from webhook.server.metricsport import cache_json
from webhook.sources.chain import IdentityChain
from webhook.sources.resolver import Resolver
from webhook.sources.store import IdentityStore

# What Prometheus sends: it would take OpenMetrics, where a counter must be called <name>_total.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
BUCKETS = ["125000", "250000", "500000", "1e+06", "2e+06", "4e+06", "8e+06", "+Inf"]
SAMPLE_LINE = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[^}]*)\})? (?P<value>\S+)")


def review(namespace: str, service_account: str) -> bytes:
    return json.dumps(review_of(namespace, service_account)).encode()


def parse(text: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str], str]]]:
    """TYPE lines by family, and every sample as (name, labels, value), read as text, not by a parser
    that would normalise names."""
    types: dict[str, str] = {}
    samples: list[tuple[str, dict[str, str], str]] = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif line and not line.startswith("#"):
            match = SAMPLE_LINE.fullmatch(line)
            assert match, line
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
            samples.append((match["name"], labels, match["value"]))
    return types, samples


def values(samples: list[tuple[str, dict[str, str], str]], name: str) -> dict[frozenset[tuple[str, str]], str]:
    return {frozenset(labels.items()): value for n, labels, value in samples if n == name}


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Response, Server]]:
    """A server after one mutated, one not mutated and one missing-ServiceAccount admission, a 415 and a
    405; its /metrics as Prometheus would scrape it."""
    server = start_server(tmp_path_factory.mktemp("metrics"))
    try:
        with server.client() as c:
            assert (
                "patch"
                in c.post("/mutate", content=review("webhook-demo", "app"), headers=JSON_HEADERS).json()["response"]
            )
            not_mutated = c.post("/mutate", content=review("default", "default"), headers=JSON_HEADERS).json()[
                "response"
            ]
            assert "patch" not in not_mutated
            missing = c.post("/mutate", content=review("nowhere", "ghost"), headers=JSON_HEADERS).json()["response"]
            assert "not found" in missing["warnings"][0]
            assert c.post("/mutate", content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
            assert c.get("/mutate").status_code == 405
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        yield httpx.get(url, headers={"accept": PROMETHEUS_ACCEPT}), server
    finally:
        server.stop()


def test_metrics_are_prometheus_text_whatever_the_scraper_accepts(scraped: tuple[httpx.Response, Server]) -> None:
    response, _ = scraped
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# EOF" not in response.text


def test_metrics_are_gzipped_when_asked(scraped: tuple[httpx.Response, Server]) -> None:
    _, server = scraped
    response = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert "# TYPE http_request_count counter" in response.text  # httpx has decompressed it


def test_http_request_count(scraped: tuple[httpx.Response, Server]) -> None:
    types, samples = parse(scraped[0].text)
    assert types["http_request_count"] == "counter"
    assert values(samples, "http_request_count") == {
        frozenset({("verb", "POST"), ("path", "/mutate"), ("code", "200")}): "3",
        frozenset({("verb", "POST"), ("path", "/mutate"), ("code", "415")}): "1",
        frozenset({("verb", "GET"), ("path", "/mutate"), ("code", "405")}): "1",
    }
    assert not any(name.startswith("http_request_count_") for name, _, _ in samples)  # no _total, no _created


def test_http_request_latencies_histogram_in_microseconds(scraped: tuple[httpx.Response, Server]) -> None:
    types, samples = parse(scraped[0].text)
    assert types["http_request_latencies"] == "histogram"
    buckets = [(labels, value) for name, labels, value in samples if name == "http_request_latencies_bucket"]
    post = [(labels["le"], int(value)) for labels, value in buckets if labels["verb"] == "POST"]
    assert [le for le, _ in post] == BUCKETS
    assert {frozenset(labels) for labels, _ in buckets} == {frozenset({"verb", "path", "le"})}
    counts = values(samples, "http_request_latencies_count")
    assert counts[frozenset({("verb", "POST"), ("path", "/mutate")})] == "4"
    assert post[-1][1] == 4
    assert post[0][1] == 4  # every admission took under 125 ms: the unit is microseconds, not seconds
    total = float(values(samples, "http_request_latencies_sum")[frozenset({("verb", "POST"), ("path", "/mutate")})])
    assert 4 <= total < 4 * 125_000  # whole microseconds, at least one each


def test_http_request_duration_microseconds_summary(scraped: tuple[httpx.Response, Server]) -> None:
    types, samples = parse(scraped[0].text)
    assert types["http_request_duration_microseconds"] == "summary"
    post = frozenset({("verb", "POST"), ("path", "/mutate")})
    assert values(samples, "http_request_duration_microseconds_count")[post] == "4"
    assert post in values(samples, "http_request_duration_microseconds_sum")
    assert not [s for s in samples if s[0] == "http_request_duration_microseconds"]  # no quantiles, as upstream


def test_pod_identity_webhook_series(scraped: tuple[httpx.Response, Server]) -> None:
    types, samples = parse(scraped[0].text)
    assert types["pod_identity_webhook_pod_count"] == "counter"
    assert values(samples, "pod_identity_webhook_pod_count") == {
        frozenset({("method", "sts_web_identity")}): "1",
        frozenset({("method", "container_credentials")}): "0",
    }
    assert types["pod_identity_webhook_missing_sa_count"] == "counter"
    assert values(samples, "pod_identity_webhook_missing_sa_count") == {frozenset(): "1"}
    assert types["pod_identity_webhook_used"] == "gauge"
    assert values(samples, "pod_identity_webhook_used") == {frozenset(): "1"}
    assert not any(name.startswith("pod_identity_webhook_") and name.endswith("_total") for name, _, _ in samples)


def test_our_own_metrics_are_still_there(scraped: tuple[httpx.Response, Server]) -> None:
    _, samples = parse(scraped[0].text)
    outcomes = values(samples, "irsa_webhook_admission_requests_total")
    assert outcomes[frozenset({("outcome", "mutated")})] == "1.0"
    assert outcomes[frozenset({("outcome", "bad_request")})] == "2.0"


def test_debug_cache_is_404_without_the_flag(scraped: tuple[httpx.Response, Server]) -> None:
    _, server = scraped
    assert httpx.get(f"http://127.0.0.1:{server.metrics_port}/debug/alpha/cache").status_code == 404


def test_debug_cache_with_the_flag_is_upstreams_json(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--enable-debugging-handlers")
    try:
        response = httpx.get(f"http://127.0.0.1:{server.metrics_port}/debug/alpha/cache")
    finally:
        server.stop()
    assert response.status_code == 200
    # Go's json.MarshalIndent(cache, "", " "): map keys sorted, struct fields in their order, one space.
    assert response.text == (
        "{\n"
        ' "default/default": {\n  "RoleARN": "",\n  "Audience": "sts.amazonaws.com",\n'
        '  "UseRegionalSTS": false,\n  "TokenExpiration": 86400\n },\n'
        ' "default/s3-reader": {\n  "RoleARN": "arn:aws:iam::111122223333:role/s3-reader",\n'
        '  "Audience": "sts.amazonaws.com",\n  "UseRegionalSTS": true,\n  "TokenExpiration": 3600\n },\n'
        ' "gov/reports": {\n  "RoleARN": "arn:aws-us-gov:iam::111122223333:role/reports",\n'
        '  "Audience": "sts.amazonaws.com",\n  "UseRegionalSTS": false,\n  "TokenExpiration": 86400\n },\n'
        ' "shop/checkout": {\n  "RoleARN": "arn:aws:iam::111122223333:role/shop/checkout",\n'
        '  "Audience": "sts.amazonaws.com",\n  "UseRegionalSTS": true,\n  "TokenExpiration": 7200\n },\n'
        ' "webhook-demo/app": {\n  "RoleARN": "arn:aws:iam::111122223333:role/demo-app",\n'
        '  "Audience": "sts.amazonaws.com",\n  "UseRegionalSTS": false,\n  "TokenExpiration": 86400\n }\n'
        "}"
    )


def test_cache_json_escapes_as_go_does() -> None:
    identity = Identity("ns", "a&b", role_arn="<x>", audience="ü\u2028")
    assert cache_json({}) == b"{}"
    text = cache_json({("ns", "a&b"): identity}).decode()
    assert '"ns/a\\u0026b"' in text
    assert '"RoleARN": "\\u003cx\\u003e"' in text
    assert '"Audience": "ü\\u2028"' in text  # UTF-8 as it is, line separators escaped


class _Listed:
    """An EKS Pod Identity source that lists every ServiceAccount."""

    name = "pod-identity"
    ready = True

    def lookup(self, namespace: str, service_account: str) -> Identity | None:
        return Identity(namespace, service_account, source=self.name)


def _pod_counts() -> dict[str, int]:
    return {
        method: int(value)
        for method, value in re.findall(
            r'pod_identity_webhook_pod_count\{method="(\w+)"\} (\d+)', metrics.UPSTREAM.render()
        )
    }


def test_pod_identity_mutations_count_as_container_credentials() -> None:
    store = IdentityStore()
    store.replace_all([Identity("webhook-demo", "app", role_arn="arn:aws:iam::111122223333:role/demo-app")])
    endpoint = MutateEndpoint(IdentityChain(Resolver(store), pod_identity=_Listed()), Settings())
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/mutate",
        "headers": [(b"content-type", b"application/json")],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": review("webhook-demo", "app"), "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    before = _pod_counts()
    asyncio.run(endpoint(scope, receive, send))
    answer = json.loads(sent[-1]["body"])["response"]
    assert answer["patchType"] == "JSONPatch"
    after = _pod_counts()
    assert after["container_credentials"] == before["container_credentials"] + 1
    assert after["sts_web_identity"] == before["sts_web_identity"]
