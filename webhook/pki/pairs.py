"""Making and reading the self-managed certificates: a CA per pair, ECDSA P-256.

Each pair gets a CA of its own, which signs that one serving certificate and is then thrown away
with its key: a rotation always makes a new CA, so nothing ever needs an old CA key again, and a
copy of the Secret cannot mint certificates. The CA still exists (rather than a self-signed leaf)
so that the caBundle names a CA, as kube-apiserver expects, and so that old and new can be trusted
side by side during a rotation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates start a little in the past: a node whose clock is behind the writer's must not see a
# certificate that is not valid yet.
CLOCK_SKEW = dt.timedelta(minutes=5)


class PairError(ValueError):
    """Bytes that are not a usable serving pair (unreadable, mismatched, not signed by its CA)."""


@dataclass(frozen=True, slots=True)
class Pair:
    """A serving certificate, its key and the CA that signed it, as PEM, with what is decided on."""

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    not_after: float  # Unix time; the CA expires with it
    serial: int
    hosts: frozenset[str]

    @property
    def fingerprint(self) -> bytes:
        return hashlib.sha256(self.cert_pem).digest()

    @property
    def ca_fingerprint(self) -> bytes:
        return fingerprint(x509.load_pem_x509_certificate(self.ca_pem))


def fingerprint(cert: x509.Certificate) -> bytes:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue(hosts: Sequence[str], lifetime: float, now: float) -> Pair:
    """A new CA and a serving certificate for ``hosts`` it signed, both valid for ``lifetime`` seconds."""
    start = dt.datetime.fromtimestamp(now, dt.UTC)
    not_before, not_after = start - CLOCK_SKEW, start + dt.timedelta(seconds=lifetime)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_serial = x509.random_serial_number()
    ca_name = _name(f"irsa-webhook self-managed CA {ca_serial:x}"[:64])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(ca_serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0][:64]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Pair(
        cert.public_bytes(serialization.Encoding.PEM),
        key_pem,
        ca.public_bytes(serialization.Encoding.PEM),
        not_after.timestamp(),
        serial,
        frozenset(hosts),
    )


def hosts_of(cert: x509.Certificate) -> frozenset[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(
        [*san.get_values_for_type(x509.DNSName), *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]
    )


def _matching(cert_pem: bytes, key_pem: bytes) -> x509.Certificate:
    """The certificate of a PEM pair whose key is the certificate's; PairError otherwise."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PairError(f"not PEM: {exc}") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != cert.public_key().public_bytes(
        serialization.Encoding.DER, public
    ):
        raise PairError("the key is not the certificate's")
    return cert


def load(cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> Pair:
    """The pair these bytes hold; PairError saying what is wrong with them otherwise."""
    cert = _matching(cert_pem, key_pem)
    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
    except (ValueError, TypeError) as exc:
        raise PairError(f"not PEM: {exc}") from None
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise PairError("the certificate is not signed by the CA stored with it") from None
    return Pair(cert_pem, key_pem, ca_pem, cert.not_valid_after_utc.timestamp(), cert.serial_number, hosts_of(cert))


def load_served(cert_pem: bytes, key_pem: bytes) -> tuple[bytes, float]:
    """(sha256 of the certificate PEM, expiry) of a pair on disk; PairError if it is not one."""
    cert = _matching(cert_pem, key_pem)
    return hashlib.sha256(cert_pem).digest(), cert.not_valid_after_utc.timestamp()


def certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle; [] for an empty or unreadable one."""
    try:
        return x509.load_pem_x509_certificates(pem) if pem.strip() else []
    except ValueError:
        return []


def pem_of(certs: Iterable[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
