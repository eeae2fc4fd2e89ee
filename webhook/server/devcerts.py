"""Throwaway CA and serving certificate for development, kind and tests (``irsa-webhook certs``).

ECDSA P-256: small, fast handshakes, accepted by kube-apiserver and every TLS stack we talk to.
An existing CA in the output folder is reused, so re-running rotates only the serving certificate
and the caBundle registered in the webhook configuration stays valid.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webhook.core import safefiles

DEFAULT_SERVICE = "irsa-webhook"
DEFAULT_NAMESPACE = "irsa-webhook"


@dataclass(frozen=True, slots=True)
class CertFiles:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path
    ca_bundle: Path


def default_dns_names(service: str = DEFAULT_SERVICE, namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """The names kube-apiserver uses to reach a webhook Service, plus localhost for local runs."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
        "localhost",
    ]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, mode: int) -> None:
    # A new file replaces the old one by rename, created with its final mode: a key never lands in
    # an existing inode that may still be world-readable, and a reloading server never reads half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    safefiles.replace(path, data, mode)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_ca(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    if not (cert_path.exists() and key_path.exists()):
        return None
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.not_valid_after_utc <= dt.datetime.now(dt.UTC) + dt.timedelta(days=1):
        return None  # about to expire: make a new one
    return cert, key


def _new_ca(days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "irsa-webhook dev CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = ("127.0.0.1", "::1"),
    *,
    days: int = 365,
) -> tuple[bytes, bytes]:
    """A new serving certificate and its private key, both PEM, signed by the given CA."""
    names = list(dict.fromkeys(dns_names or default_dns_names()))
    ips = [ipaddress.ip_address(ip) for ip in dict.fromkeys(ip_addresses)]
    key = _key()
    now = dt.datetime.now(dt.UTC)
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "irsa-webhook")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([*(x509.DNSName(n) for n in names), *(x509.IPAddress(i) for i in ips)]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def load_ca(folder: str | Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA that :func:`generate` left in ``folder``; ValueError if it is missing, unusable or expiring."""
    loaded = _load_ca(Path(folder) / "ca.crt", Path(folder) / "ca.key")
    if loaded is None:
        raise ValueError(f"no usable CA (ca.crt, ca.key) in {folder}")
    return loaded


def generate(
    out: str | Path,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = ("127.0.0.1", "::1"),
    *,
    days: int = 365,
    new_ca: bool = False,
) -> CertFiles:
    """Write ``ca.crt``, ``ca.key``, ``tls.crt``, ``tls.key`` and ``ca-bundle.b64`` into ``out``."""
    folder = Path(out)
    files = CertFiles(
        folder / "ca.crt", folder / "ca.key", folder / "tls.crt", folder / "tls.key", folder / "ca-bundle.b64"
    )
    loaded = None if new_ca else _load_ca(files.ca_cert, files.ca_key)
    ca_cert, ca_key = loaded or _new_ca(days)
    cert_pem, key_pem = issue(ca_cert, ca_key, dns_names, ip_addresses, days=days)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    if loaded is None:
        _write(files.ca_cert, ca_pem, 0o644)
        _write(files.ca_key, _pem_key(ca_key), 0o600)
    # Key first, then certificate, each replaced whole: a reloading server that sees the new key
    # with the old certificate fails the pair check, keeps the old pair and retries.
    _write(files.key, key_pem, 0o600)
    _write(files.cert, cert_pem, 0o644)
    # The caBundle field of a webhook configuration is base64 PEM; kustomize's self-signed
    # component and `kubectl patch` read it from here.
    _write(files.ca_bundle, base64.b64encode(ca_pem) + b"\n", 0o644)
    return files
