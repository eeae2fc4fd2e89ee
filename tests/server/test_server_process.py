"""The real server: a uvicorn process on 127.0.0.1 with a generated certificate, httpx over real TLS."""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cases import JSON_HEADERS
from tests.support.certs import generate_certs, handshake
from tests.support.paths import EXAMPLE_ACCOUNTS, SAMPLE
from tests.support.server import Server, run_to_exit, serve_argv, start_server
from webhook.server import devcerts

REVIEW = SAMPLE.read_bytes()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()


def patch_of(response: httpx.Response) -> list[dict[str, object]]:
    assert response.status_code == 200, response.text
    result: list[dict[str, object]] = json.loads(base64.b64decode(response.json()["response"]["patch"]))
    return result


def test_mutates_over_verified_tls_and_exports_metrics(server: Server) -> None:
    with server.client() as c:
        patch = patch_of(c.post("/mutate", content=REVIEW, headers=JSON_HEADERS))
        assert c.get("/healthz").json() == {"status": "ok"}
    assert any(op["path"] == "/spec/volumes/-" for op in patch)
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics").text
    assert metric(text, "irsa_webhook_admission_requests_total", outcome="mutated") == 1
    assert metric(text, "irsa_webhook_mutations_total", mode="irsa") == 1
    assert metric(text, "irsa_webhook_admission_duration_seconds_count") == 1
    assert metric(text, "irsa_webhook_service_account_cache_synced") == 1
    # every ServiceAccount in examples/service-accounts.yaml
    assert metric(text, "irsa_webhook_service_account_cache_size") == 5
    not_after = x509.load_pem_x509_certificate((server.certs.cert).read_bytes()).not_valid_after_utc
    assert metric(text, "irsa_webhook_certificate_expiry_timestamp_seconds") == not_after.timestamp()


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"metric {name}{labels} not exported")


def test_certificate_swapped_on_disk_is_served_without_restart(server: Server) -> None:
    before = server.served_serial()
    with server.client() as kept_alive:
        assert kept_alive.post("/mutate", content=REVIEW, headers=JSON_HEADERS).status_code == 200
        devcerts.generate(server.certs.folder)  # same CA, new serving key and certificate, written in place
        new_serial = x509.load_pem_x509_certificate((server.certs.cert).read_bytes()).serial_number
        assert new_serial != before
        deadline = time.monotonic() + 15
        while server.served_serial() != new_serial:
            assert time.monotonic() < deadline, "new certificate not served within 15 s"
            time.sleep(0.2)
        # the connection opened before the swap carries on
        assert kept_alive.post("/mutate", content=REVIEW, headers=JSON_HEADERS).status_code == 200
    with server.client() as fresh:
        assert fresh.post("/mutate", content=REVIEW, headers=JSON_HEADERS).status_code == 200
    assert server.proc.poll() is None


def test_broken_certificate_pair_keeps_the_old_one(server: Server, tmp_path: Path) -> None:
    before = server.served_serial()
    other = devcerts.generate(tmp_path / "other")
    (server.certs.key).write_bytes(other.key.read_bytes())  # key no longer matches tls.crt
    time.sleep(3)  # longer than the reload interval
    assert server.served_serial() == before
    with server.client() as c:
        assert c.get("/readyz").status_code == 200
    assert "reload failed" in server.log.read_text()


def test_tls_min_version_13_refuses_tls12_clients(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--tls-min-version=1.3")
    try:
        ctx = ssl.create_default_context(cafile=str(srv.certs.ca))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError), handshake(srv.port, ctx):
            pass
        ctx13 = ssl.create_default_context(cafile=str(srv.certs.ca))
        with handshake(srv.port, ctx13) as tls:
            assert tls.version() == "TLSv1.3"
    finally:
        srv.stop()


def test_cipher_suites_restrict_tls12(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")
    try:
        ctx = ssl.create_default_context(cafile=str(srv.certs.ca))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with handshake(srv.port, ctx) as tls:
            cipher = tls.cipher()
            assert cipher is not None
            assert cipher[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    finally:
        srv.stop()


def test_sigterm_exits_zero(server: Server) -> None:
    with server.client() as c:
        assert c.post("/mutate", content=REVIEW, headers=JSON_HEADERS).status_code == 200
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 10
    assert "server stopped" in server.log.read_text()


def test_upstream_deployment_args_work_unchanged(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    devcerts.generate(certs)
    # As upstream's Deployment writes them: Go flag syntax, klog flags, no subcommand.
    argv = [
        "--in-cluster=false",
        "--namespace=irsa-webhook",
        "--service-name=pod-identity-webhook",
        "--annotation-prefix=eks.amazonaws.com",
        "--token-audience=sts.amazonaws.com",
        "--logtostderr",
        "-v=2",
        "-port={port}",
        "-metrics-port",
        "{metrics}",
        "--bind-address=127.0.0.1",
        f"--tls-cert={certs / 'tls.crt'}",
        f"--tls-key={certs / 'tls.key'}",
        f"--service-accounts={EXAMPLE_ACCOUNTS}",
        "--sts-regional-endpoint=true",
        "--service-account-lookup-grace-period=100ms",
    ]
    srv = start_server(tmp_path, argv=argv, env={"IRSA_WEBHOOK_AWS_DEFAULT_REGION": "eu-west-1"})
    try:
        with srv.client() as c:
            patch = patch_of(c.post("/mutate", content=REVIEW, headers=JSON_HEADERS))
        env_op = next(op for op in patch if str(op["path"]).endswith("/env"))
        added = env_op["value"]
        assert isinstance(added, list)
        names = {e["name"]: e["value"] for e in added}
        assert names["AWS_STS_REGIONAL_ENDPOINTS"] == "regional"
        assert names["AWS_REGION"] == "eu-west-1"  # from the environment variable
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        pytest.param(["--in-cluster=true"], "--in-cluster=true is not supported", id="in-cluster"),
        pytest.param(["--in-cluster"], "--in-cluster=true is not supported", id="in-cluster-bare"),
        pytest.param(["--tls-cert=/nonexistent.crt"], "cannot load TLS certificate", id="missing-cert"),
        pytest.param(["--tls-min-version=1.4"], "--tls-min-version", id="unknown-tls-version"),
        pytest.param(["--tls-cipher-suites=TLS_RSA_WITH_NO_SUCH_CIPHER"], "cipher suite", id="unknown-cipher"),
        pytest.param(["--token-expiration=abc"], "--token-expiration", id="bad-int"),
        # kube-apiserver rejects expirationSeconds above 2^32 in every pod the webhook would mutate.
        pytest.param(["--token-expiration=5000000000"], "above 2^32 seconds", id="token-expiration-above-2^32"),
        pytest.param([f"--token-expiration={(1 << 32) + 1}"], "above 2^32 seconds", id="token-expiration-2^32+1"),
        # Integers as Go's strconv.ParseInt(s, 10, 64) reads them: ASCII digits, one sign, int64.
        pytest.param(
            ["--token-expiration=\u0661\u0662\u0660\u0660"], "is not an integer", id="int-arabic-indic-digits"
        ),
        pytest.param(["--token-expiration=1_000"], "'1_000' is not an integer", id="int-underscore"),
        pytest.param(["--token-expiration= 1000"], "' 1000' is not an integer", id="int-space"),
        pytest.param(["--token-expiration=0x400"], "'0x400' is not an integer", id="int-hex"),
        pytest.param(["--token-expiration=+-1000"], "is not an integer", id="int-two-signs"),
        pytest.param(["--token-expiration=" + "9" * 5000], "(5000 characters) is out of range", id="int-5000-digits"),
        pytest.param(["--port=9223372036854775808"], "out of range (64-bit integer)", id="int-above-int64"),
        pytest.param(["--port=-9223372036854775809"], "out of range (64-bit integer)", id="int-below-int64"),
        pytest.param(["--port=70000"], "--port must be a port number", id="port-above-65535"),
        pytest.param(["--max-request-bytes=\u0661"], "--max-request-bytes", id="int-other-script-digit"),
        pytest.param(["--sts-regional-endpoint=maybe"], "not a boolean", id="bad-bool"),
        pytest.param(["--service-account-lookup-grace-period=5 parsecs"], "invalid duration", id="bad-duration"),
        pytest.param(["--shutdown-delay=\u0661s"], "invalid duration", id="duration-other-script-digit"),
        pytest.param(["--shutdown-delay=-1s"], "--shutdown-delay must not be negative", id="negative-delay"),
        pytest.param(["--shutdown-timeout=-1s"], "--shutdown-timeout must not be negative", id="negative-timeout"),
        pytest.param(["--shutdown-delay=9999999h"], "out of range", id="duration-above-int64-nanoseconds"),
        pytest.param(["--shutdown-delay=" + "9" * 5000 + "s"], "(5001 characters) is out of range", id="duration-huge"),
        pytest.param(["--service-accounts=/nonexistent.yaml"], "--service-accounts", id="missing-sa-file"),
        pytest.param(["-v", "x"], "invalid value for --v", id="bad-verbosity"),
    ],
)
def test_bad_flags_exit_2_with_one_clear_line(tmp_path: Path, args: list[str], needle: str) -> None:
    certs = generate_certs(tmp_path / "certs")
    result = run_to_exit(serve_argv(certs, *args))
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
