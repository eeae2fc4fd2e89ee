"""The serving TLS context, built from files and reloaded in place when they change.

cert-manager and Secret volumes rotate ``tls.crt``/``tls.key`` by swapping a symlink; we poll the
files' contents and load the new pair into the same :class:`ssl.SSLContext`, so new handshakes use it
without a restart and established keep-alive connections carry on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from pathlib import Path

from cryptography import x509

from webhook import metrics

log = logging.getLogger("irsa_webhook.tls")

# Kubelet refreshes Secret volumes about once a minute; a 2 s poll of two small files is noise.
RELOAD_INTERVAL = 2.0

TLS_VERSIONS = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
    "VersionTLS12": ssl.TLSVersion.TLSv1_2,
    "VersionTLS13": ssl.TLSVersion.TLSv1_3,
}
# IANA/Go names (what upstream's --tls-cipher-suites takes) → OpenSSL names. TLS 1.3 suites are not
# configurable in OpenSSL through this call and are always on, as in Go; naming them is accepted.
CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
}
TLS13_SUITES = frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})


class TLSConfigError(ValueError):
    """A TLS flag or file cannot be used."""


def cipher_string(suites: str) -> str | None:
    """OpenSSL cipher string for ``--tls-cipher-suites``; None keeps Python's secure default set."""
    names = [n.strip() for n in suites.split(",") if n.strip()]
    if not names:
        return None
    openssl: list[str] = []
    for name in names:
        if name in TLS13_SUITES:
            continue
        if name not in CIPHERS:
            raise TLSConfigError(f"unknown or insecure TLS cipher suite {name!r}; known: {', '.join(sorted(CIPHERS))}")
        openssl.append(CIPHERS[name])
    return ":".join(openssl) or None


class ServingTLS:
    """Owns the server's SSLContext and keeps it in step with the certificate files."""

    def __init__(self, cert: str, key: str, min_version: str = "1.2", cipher_suites: str = "") -> None:
        if min_version not in TLS_VERSIONS:
            raise TLSConfigError(f"--tls-min-version must be one of 1.2, 1.3 (got {min_version!r})")
        self.cert = Path(cert)
        self.key = Path(key)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = TLS_VERSIONS[min_version]
        ciphers = cipher_string(cipher_suites)
        if ciphers:
            try:
                self.context.set_ciphers(ciphers)
            except ssl.SSLError as exc:
                raise TLSConfigError(f"--tls-cipher-suites not usable: {exc}") from None
        self._fingerprint = b""
        self.loaded = False
        self.not_after: float | None = None
        try:
            self.reload()
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise TLSConfigError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from None

    def reload(self) -> bool:
        """Load the pair if its bytes changed; True when a new certificate was loaded."""
        cert_pem = self.cert.read_bytes()
        key_pem = self.key.read_bytes()
        fingerprint = hashlib.sha256(cert_pem + b"\0" + key_pem).digest()
        if fingerprint == self._fingerprint:
            return False
        # Validates that key and certificate match; on failure the old pair stays in service.
        self.context.load_cert_chain(self.cert, self.key)
        self._fingerprint = fingerprint
        self.loaded = True
        self.not_after = x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc.timestamp()
        metrics.CERT_EXPIRY.set(self.not_after)
        return True

    async def watch(self, interval: float = RELOAD_INTERVAL) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if self.reload():
                    metrics.CERT_RELOADS.labels("success").inc()
                    log.info("serving certificate reloaded", extra={"fields": {"not_after": self.not_after}})
            except (OSError, ssl.SSLError, ValueError) as exc:
                # Mid-rotation the new cert may not match the old key yet: keep serving, retry.
                metrics.CERT_RELOADS.labels("error").inc()
                log.warning("serving certificate reload failed, keeping the current one: %s", exc)
