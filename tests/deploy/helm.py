"""The Helm chart in manifests/helm/irsa-webhook, rendered and linted with the project's own helm.

Shared by the deploy tests, the e2e suite, render.py and `make lint-deploy`:

    python -m tests.deploy.helm lint      `helm lint --strict` with the default values and each ci/*.yaml

helm is ``HELM`` when set, else the binary `make helm` builds (tests/deploy/tools.sh, pinned there)
into .cache/helm/<version>/bin, never whatever happens to be on PATH. Every run gets its own empty
helm config, cache and data folders, so no repository list or plugin of the user's changes a result.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store

from tests.support.paths import MANIFESTS, REPO, TESTS

CHART = MANIFESTS / "helm" / "irsa-webhook"
CI_VALUES = CHART / "ci"
TOOLS = TESTS / "deploy" / "tools.sh"
# The release and namespace whose names are the kustomize base's: fullname == "irsa-webhook".
RELEASE = "irsa-webhook"
NAMESPACE = "irsa-webhook"
# Rendering or linting a chart takes well under a second; an install against the local API server a
# few seconds. This only bounds a hung process.
HELM_TIMEOUT = 120


class MissingHelm(RuntimeError):
    """helm is not built yet (or HELM names nothing runnable)."""


def pinned_version() -> str:
    """The helm version tools.sh builds: its HELM_VERSION line is the one place it is written."""
    found = re.search(r'^HELM_VERSION="(v[^"]+)"$', TOOLS.read_text(), re.MULTILINE)
    if not found:
        raise RuntimeError(f"no HELM_VERSION pin in {TOOLS}")
    return found.group(1)


def find_helm() -> Path:
    """``HELM`` or the pinned build under .cache/helm, or MissingHelm with the remedy."""
    configured = os.environ.get("HELM")
    helm = Path(configured) if configured else REPO / ".cache" / "helm" / pinned_version() / "bin" / "helm"
    if not (helm.is_file() and os.access(helm, os.X_OK)):
        where = f"HELM={configured}" if configured else str(helm)
        raise MissingHelm(f"no helm at {where}: run `make helm` (builds it once) or set HELM=/path/to/helm")
    return helm


def ci_values() -> list[str]:
    """The documented values examples (ci/*.yaml stems), so a new one is rendered and tested without a list."""
    return sorted(p.stem for p in CI_VALUES.glob("*.yaml"))


def run(
    helm: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = HELM_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """helm ARGS with private config/cache/data folders; RuntimeError with helm's output when it fails."""
    with tempfile.TemporaryDirectory(prefix="helm-home-") as home:
        environ = {
            **os.environ,
            "HELM_CONFIG_HOME": f"{home}/config",
            "HELM_CACHE_HOME": f"{home}/cache",
            "HELM_DATA_HOME": f"{home}/data",
            **(env or {}),
        }
        result = subprocess.run(
            [str(helm), *args], capture_output=True, text=True, timeout=timeout, check=False, env=environ
        )
    if check and result.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def values_args(values: str | None) -> list[str]:
    """``-f ci/VALUES.yaml``, or nothing for the chart's defaults."""
    return [] if values is None else ["-f", str(CI_VALUES / f"{values}.yaml")]


def template(
    helm: Path,
    values: str | None = None,
    *extra: str,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> str:
    """`helm template` of the chart with the default values or ci/VALUES.yaml (and EXTRA args)."""
    args = ["template", release, str(CHART), "--namespace", namespace, *values_args(values), *extra]
    return run(helm, *args).stdout


def render_name(values: str | None) -> str:
    """The name of a render in .cache/deploy-render and in test ids: helm-default, helm-<ci stem>."""
    return f"helm-{values or 'default'}"


def render_all(helm: Path | None = None) -> dict[str, str]:
    """{render name: YAML} for the default values and every ci/*.yaml."""
    helm = helm or find_helm()
    return {render_name(values): template(helm, values) for values in [None, *ci_values()]}


def lint(helm: Path, values: str | None = None) -> subprocess.CompletedProcess[str]:
    """`helm lint --strict` (warnings fail too) with the default values or ci/VALUES.yaml."""
    return run(helm, "lint", "--strict", str(CHART), *values_args(values), check=False)


def verify_serving_pair(ca_bundle: bytes, cert: bytes, key: bytes, host: str) -> x509.Certificate:
    """What kube-apiserver checks when it calls the webhook, plus the pair itself: CERT (PEM) chains to a
    CA of CA_BUNDLE (PEM), is valid now, names HOST in its SAN for server auth, and KEY is its private
    key. Returns the leaf; raises (cryptography's VerificationError, AssertionError) otherwise."""
    leaf, *intermediates = x509.load_pem_x509_certificates(cert)
    verifier = (
        PolicyBuilder()
        .store(Store(x509.load_pem_x509_certificates(ca_bundle)))
        .build_server_verifier(x509.DNSName(host))
    )
    verifier.verify(leaf, intermediates)
    private_key = serialization.load_pem_private_key(key, password=None)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    assert private_key.public_key().public_bytes(serialization.Encoding.DER, public) == leaf.public_key().public_bytes(
        serialization.Encoding.DER, public
    ), "tls.key is not the private key of tls.crt"
    return leaf


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.deploy.helm", description=__doc__)
    parser.add_argument("command", choices=["lint"])
    parser.parse_args(argv)
    try:
        helm = find_helm()
    except MissingHelm as exc:
        print(f"helm: {exc}", file=sys.stderr)
        return 1
    failed = 0
    for values in [None, *ci_values()]:
        result = lint(helm, values)
        name = "default values" if values is None else f"ci/{values}.yaml"
        if result.returncode != 0:
            failed += 1
            print(f"helm lint ({name}): FAILED\n{result.stdout}{result.stderr}", file=sys.stderr)
        else:
            print(f"helm lint ({name}): ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
