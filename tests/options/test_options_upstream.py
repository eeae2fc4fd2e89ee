"""Every upstream flag (``tests/options/upstream_flags.py``) on ``serve``, given as upstream's image is given
them (flags only, no subcommand): accepted in Go's syntax and resolved to its value; an ignored one says
so in a log line; a refused value exits 2 with one line; and one upstream-style Deployment passing every
flag at once starts and mutates."""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.options.upstream_flags import ALL, IGNORED, KLOG, MAIN_GO, PENDING_OTHER_WORK, UpstreamFlag
from tests.support.cases import JSON_HEADERS
from tests.support.certs import generate_certs
from tests.support.paths import EXAMPLE_ACCOUNTS, SAMPLE
from tests.support.server import run_to_exit, serve_argv, start_server
from webhook import __version__
from webhook.cli import build_parser
from webhook.commands import serve
from webhook.options.config import serve_config
from webhook.options.flags import FlagError, normalise_argv, resolve
from webhook.options.tables import KLOG_LAYOUT_FLAGS, MUTATION_FLAGS, SERVER_FLAGS

BASE = ["--namespace=irsa"]  # --watch-config-map reads its ConfigMap from --namespace


def parsed(argv: list[str]) -> argparse.Namespace:
    """What ``irsa-webhook <argv>`` parses to: flags only is ``serve``, as upstream's image runs it."""
    return build_parser().parse_args(normalise_argv(["serve", *argv], (*SERVER_FLAGS, *MUTATION_FLAGS)))


def rows(flags: tuple[UpstreamFlag, ...]) -> list[object]:
    return [
        pytest.param(
            flag,
            id=flag.name,
            marks=[pytest.mark.xfail(strict=True, reason="pending: lands with other work")]
            if flag.name in PENDING_OTHER_WORK
            else [],
        )
        for flag in flags
    ]


@pytest.mark.parametrize("flag", rows(ALL))
def test_upstream_flag_is_accepted_with_its_value(flag: UpstreamFlag) -> None:
    args = parsed([*BASE, *flag.argv])
    if flag.name == "version":  # acts before any other flag is read (see test_version_prints_and_exits_0)
        assert args.print_version == flag.expected
        return
    values = resolve(args, serve.FLAGS, environ={})
    assert values[flag.dest] == flag.expected
    config = serve_config(values)
    said = [note for note in config.notes if f"--{flag.name}" in note]
    if flag.treatment == IGNORED:
        assert said, f"--{flag.name} is ignored without a log line"
        assert all("ignored" in note for note in said)
        assert all("\n" not in note for note in said)
    else:
        assert not [note for note in said if "ignored" in note]


@pytest.mark.parametrize("flag", rows(tuple(f for f in ALL if f.example and f.kind != "bool")))
def test_upstream_flag_takes_its_value_as_the_next_argument(flag: UpstreamFlag) -> None:
    """pflag's ``--flag value`` form (not for booleans: to pflag ``--flag false`` is a bare flag and an argument)."""
    values = resolve(parsed([*BASE, f"--{flag.name}", flag.example]), serve.FLAGS, environ={})
    assert values[flag.dest] == flag.expected


def test_v_shorthand_as_upstream_writes_it() -> None:
    for argv in (["-v=4"], ["-v", "4"], ["--v=4"]):
        assert serve_config(resolve(parsed(argv), serve.FLAGS, environ={})).verbosity == 4


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        pytest.param(["--stderrthreshold=LOUD"], "--stderrthreshold must be", id="stderrthreshold"),
        pytest.param(["--vmodule=handler"], "--vmodule must be", id="vmodule-no-level"),
        pytest.param(["--vmodule=handler=-1"], "--vmodule must be", id="vmodule-negative"),
        pytest.param(["--log_backtrace_at=:0"], "--log_backtrace_at must be", id="backtrace-no-file"),
        pytest.param(["--log_backtrace_at=handler.go:x"], "--log_backtrace_at must be", id="backtrace-no-line"),
        pytest.param(["--log_file_max_size=-1"], "--log_file_max_size must not be negative", id="max-size"),
        pytest.param(["--skip_headers=maybe"], "not a boolean", id="bool"),
    ],
)
def test_values_klog_refuses_are_refused(argv: list[str], needle: str) -> None:
    with pytest.raises(FlagError, match=needle):
        serve_config(resolve(parsed(argv), serve.FLAGS, environ={}))


@pytest.mark.parametrize("flag", rows(tuple(f for f in ALL if f.refused)))
def test_refused_values_exit_2_with_one_line(tmp_path: Path, flag: UpstreamFlag) -> None:
    assert flag.refused is not None
    value, needle = flag.refused
    certs = generate_certs(tmp_path / "certs")
    result = run_to_exit([f"--{flag.name}={value}", *serve_argv(certs, command=None)])
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_version_prints_and_exits_0() -> None:
    for argv in (["--version"], ["--port=8443", "--version"], ["--version=true"]):
        result = subprocess.run(
            [sys.executable, "-m", "webhook", *argv], capture_output=True, text=True, timeout=30, check=False
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, f"irsa-webhook {__version__}\n", ""), argv


def test_the_table_is_every_klog_flag_serve_knows() -> None:
    klog_here = {name for name, _, _ in KLOG_LAYOUT_FLAGS} | {"v", "logtostderr"}
    assert {f.name for f in KLOG} == klog_here
    assert len({f.name for f in ALL}) == len(ALL) == len(MAIN_GO) + len(KLOG)


def test_an_upstream_deployment_passing_every_flag_starts_and_mutates(tmp_path: Path) -> None:
    certs = generate_certs(tmp_path / "certs")
    pod_identity = tmp_path / "pod-identity.json"
    pod_identity.write_text('{"identities": []}')
    argv = [
        "--in-cluster=false",
        "--namespace=irsa",
        "--service-name=pod-identity-webhook",
        "--tls-secret=webhook-tls",
        "--port={port}",
        "--metrics-port",
        "{metrics}",
        "--kubeconfig=/nonexistent/kubeconfig",  # unused: --service-accounts serves from manifests
        "--kube-api=https://127.0.0.1:1",
        f"--tls-cert={certs.cert}",
        f"--tls-key={certs.key}",
        "--tls-min-version=1.2",
        "--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "--annotation-prefix=eks.amazonaws.com",
        "--token-audience=sts.amazonaws.com",
        "--token-mount-path=/var/run/secrets/eks.amazonaws.com/serviceaccount",
        "--token-expiration=86400",
        "--aws-default-region=eu-west-1",
        "--sts-regional-endpoint=true",
        "--watch-config-map=true",
        "--compose-role-arn",
        "--aws-account-id=111122223333",  # [ours]: no IMDS off EC2
        f"--watch-container-credentials-config={pod_identity}",
        "--container-credentials-audience=pods.eks.amazonaws.com",
        "--container-credentials-token-mount-path=/var/run/secrets/pods.eks.amazonaws.com/serviceaccount",
        "--container-credentials-token-volume-name=eks-pod-identity-token",
        "--container-credentials-token-path=eks-pod-identity-token",
        "--container-credentials-full-uri=http://169.254.170.23/v1/credentials",
        "--enable-debugging-handlers",
        "--service-account-lookup-grace-period=100ms",
        "--resync-period=1m",
        "--logtostderr",
        "--alsologtostderr",
        "-v=2",
        *(f.argv[0] for f in KLOG if f.treatment == IGNORED),
        "--bind-address=127.0.0.1",
        f"--service-accounts={EXAMPLE_ACCOUNTS}",
    ]
    server = start_server(tmp_path, argv=argv)
    try:
        with server.client() as c:
            response = c.post("/mutate", content=SAMPLE.read_bytes(), headers=JSON_HEADERS)
        patch = json.loads(base64.b64decode(response.json()["response"]["patch"]))
        assert any(op["path"] == "/spec/volumes/-" for op in patch)
        cache = httpx.get(f"http://127.0.0.1:{server.metrics_port}/debug/alpha/cache")
        assert cache.status_code == 200
        assert "webhook-demo/app" in cache.json()
    finally:
        assert server.stop() == 0
    log = server.log.read_text()
    for flag in ALL:
        if flag.treatment == IGNORED:
            assert f"--{flag.name}" in log, f"no log line for the ignored --{flag.name}"
    assert "Traceback" not in log
