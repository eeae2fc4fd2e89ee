"""Keys and certificates for the test control plane, made with the project's own tools.

The API server's service-account signing pair comes from ``irsa-webhook keys generate`` (so every
e2e run proves kube-apiserver accepts what that command writes), and its CA and serving certificate
from ``webhook.server.devcerts`` (what ``irsa-webhook certs`` uses), for 127.0.0.1/localhost.
"""

from __future__ import annotations

from pathlib import Path

from webhook.cli import main as irsa_webhook
from webhook.server import devcerts


def write_service_account_keys(directory: Path) -> tuple[Path, Path]:
    """Write an RSA key pair for signing service-account tokens; return (private, public) paths."""
    code = irsa_webhook(["keys", "generate", "--out", str(directory), "--force"])
    assert code == 0, "irsa-webhook keys generate failed"
    return directory / "sa-signer.key", directory / "sa-signer.pub"


def write_serving_pki(directory: Path, common_name: str) -> tuple[Path, Path, Path]:
    """Write a CA and a serving certificate for 127.0.0.1/localhost; return (ca, cert, key) paths."""
    # A test run lasts minutes; a day leaves room for clock skew and a paused debugger.
    files = devcerts.generate(directory / common_name, ["localhost"], ["127.0.0.1"], days=1, new_ca=True)
    return files.ca_cert, files.cert, files.key
