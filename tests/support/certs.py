"""Certificates for tests: serving pairs, rotations as real writers perform them, and TLS probes that
tell which pair is served.

A pair is made in-process with ``webhook.server.devcerts`` (fast) or through ``irsa-webhook certs``
(so the command itself is proven). Rotations come in three write orders: the certificate then the
key, the key then the certificate (both written in place, as ``cp`` does: truncate, then write the
same inode), and kubelet's atomic Secret volume update (``volumes.KubeletVolume``).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from webhook.cli import main as irsa_webhook
from webhook.server import devcerts

from .paths import REPO

CERT_FILES = ("ca.crt", "tls.crt", "tls.key")
# Short enough that many rotations fit in a test; read by the server at startup.
FAST_RELOAD = {"IRSA_WEBHOOK_TLS_RELOAD_INTERVAL": "0.1"}


@dataclass(frozen=True)
class Certs:
    """A CA and a serving certificate it signed, as ``irsa-webhook certs`` writes them in one folder."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_folder(cls, folder: Path) -> Certs:
        return cls(folder / "ca.crt", folder / "tls.crt", folder / "tls.key")

    @property
    def folder(self) -> Path:
        return self.cert.parent

    @property
    def ca_pem(self) -> bytes:
        return self.ca.read_bytes()

    def context(self) -> ssl.SSLContext:
        """A client context that trusts this CA."""
        return ssl.create_default_context(cafile=str(self.ca))


def generate_certs(folder: Path) -> Certs:
    """A CA (kept if ``folder`` has one) and a serving pair for 127.0.0.1, ::1 and localhost, in-process."""
    devcerts.generate(folder)
    return Certs.in_folder(folder)


def cli_certs(folder: Path, *args: str) -> Certs:
    """The same through the project's own command, ``irsa-webhook certs --out FOLDER ARGS``."""
    result = subprocess.run(
        [sys.executable, "-m", "webhook", "certs", "--out", str(folder), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    if result.returncode != 0:
        raise RuntimeError(f"irsa-webhook certs failed ({result.returncode}): {result.stderr}{result.stdout}")
    certs = Certs.in_folder(folder)
    for path in (certs.ca, certs.cert, certs.key):
        if not path.is_file():
            raise RuntimeError(f"irsa-webhook certs did not write {path}")
    return certs


def serving_pki(folder: Path, ips: Sequence[str] = ("127.0.0.1",), days: int = 1) -> Certs:
    """A CA of its own and a serving certificate for ``ips`` and localhost (a control plane's)."""
    # A test run lasts minutes; a day leaves room for clock skew and a paused debugger. A local cluster
    # kept for trying things out asks for longer.
    files = devcerts.generate(folder, ["localhost"], list(ips), days=days, new_ca=True)
    return Certs(files.ca_cert, files.cert, files.key)


def service_account_keys(folder: Path) -> tuple[Path, Path]:
    """An RSA pair for signing service-account tokens from ``irsa-webhook keys generate`` (so kube-apiserver
    is shown to accept what that command writes); (private, public) paths."""
    code = irsa_webhook(["keys", "generate", "--out", str(folder), "--force"])
    assert code == 0, "irsa-webhook keys generate failed"
    return folder / "sa-signer.key", folder / "sa-signer.pub"


# --- rotations -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    cert: bytes
    key: bytes
    serial: int
    not_after: float


def new_pair(ca_folder: Path, days: int = 365) -> Pair:
    """A new key and certificate signed by the CA in ``ca_folder`` (for 127.0.0.1, ::1 and localhost)."""
    ca_cert, ca_key = devcerts.load_ca(ca_folder)
    cert, key = devcerts.issue(ca_cert, ca_key, days=days)
    parsed = x509.load_pem_x509_certificate(cert)
    return Pair(cert, key, parsed.serial_number, parsed.not_valid_after_utc.timestamp())


def write_in_place(path: Path, data: bytes) -> None:
    with path.open("r+b" if path.exists() else "wb") as fh:
        fh.truncate(0)
        fh.write(data)


def cert_then_key(folder: Path, pair: Pair, pause: float = 0.0) -> None:
    write_in_place(folder / "tls.crt", pair.cert)
    time.sleep(pause)
    write_in_place(folder / "tls.key", pair.key)


def key_then_cert(folder: Path, pair: Pair, pause: float = 0.0) -> None:
    write_in_place(folder / "tls.key", pair.key)
    time.sleep(pause)
    write_in_place(folder / "tls.crt", pair.cert)


# --- probes --------------------------------------------------------------------------------------
@contextlib.contextmanager
def handshake(
    port: int, context: ssl.SSLContext, server_hostname: str = "localhost", timeout: float = 5
) -> Iterator[ssl.SSLSocket]:
    """A new TLS connection to 127.0.0.1:``port`` with ``context``, closed after the block."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        yield tls


def served_serial(port: int, cafile: Path | None = None, server_hostname: str = "127.0.0.1", timeout: float = 5) -> int:
    """Serial of the certificate served to a new connection to 127.0.0.1:``port``: verified against
    ``cafile`` when given, else whoever signed it. ``127.0.0.1`` as the server name sends no SNI."""
    if cafile is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=str(cafile))
    with handshake(port, context, server_hostname, timeout) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number
