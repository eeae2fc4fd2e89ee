"""The serving TLS context, built from files and swapped without a restart when they change.

cert-manager and Secret volumes rotate ``tls.crt``/``tls.key`` in place or by swapping a symlink, and
a writer puts the two files down one after the other, so the poller regularly sees half a rotation
(a new certificate with the old key, or the reverse). Every new pair is therefore loaded into a fresh
:class:`ssl.SSLContext` and only swapped in once it loaded (which proves the key matches the
certificate); a pair that fails leaves the served one untouched.

The listener keeps the one context it was created with; its ``sni_callback`` (which OpenSSL calls
for every ClientHello, with or without SNI) points each new handshake at the current pair's context.
Established keep-alive connections carry on with the pair they were made with.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from webhook.observe import metrics
from webhook.options.flags import env_seconds

log = logging.getLogger("irsa_webhook.tls")

# Kubelet refreshes Secret volumes about once a minute; a 2 s poll of two small files is noise.
RELOAD_INTERVAL = 2.0
# Not a flag: tests set it to rotate certificates many times a second.
RELOAD_INTERVAL_ENV = "IRSA_WEBHOOK_TLS_RELOAD_INTERVAL"

# Go's crypto/tls spellings (upstream's flag) and the short ones. TLS 1.0 and 1.1 are accepted for
# compatibility and served as 1.2: kube-apiserver always speaks 1.2 or later.
TLS_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1_2,
    "1.1": ssl.TLSVersion.TLSv1_2,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
    "VersionTLS10": ssl.TLSVersion.TLSv1_2,
    "VersionTLS11": ssl.TLSVersion.TLSv1_2,
    "VersionTLS12": ssl.TLSVersion.TLSv1_2,
    "VersionTLS13": ssl.TLSVersion.TLSv1_3,
}
_RAISED_VERSIONS = frozenset({"1.0", "1.1", "VersionTLS10", "VersionTLS11"})

# Every name Go's crypto/tls knows (CipherSuites(), InsecureCipherSuites(), the legacy CHACHA20
# aliases) → the OpenSSL name used for TLS 1.2, or None for the ones dropped as insecure.
CIPHERS: dict[str, str | None] = {
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
    # RSA key exchange: no forward secrecy, but not broken; only usable with an RSA certificate.
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    # Dropped: RC4 is broken (RFC 7465), 3DES has 64-bit blocks (Sweet32), and Go itself marks the
    # CBC-SHA256 suites insecure (no Lucky13 countermeasures); every client that offers them offers
    # an AEAD suite too.
    "TLS_RSA_WITH_RC4_128_SHA": None,
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": None,
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": None,
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": None,
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": None,
    "TLS_RSA_WITH_AES_128_CBC_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": None,
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": None,
}
# OpenSSL does not configure TLS 1.3 suites through set_ciphers; all three are always on, as in Go.
TLS13_SUITES = frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})


class TLSConfigError(ValueError):
    """A TLS flag or file cannot be used."""


def min_tls_version(value: str) -> tuple[ssl.TLSVersion, list[str]]:
    """The floor for ``--tls-min-version`` and the notes to log about it."""
    if value not in TLS_VERSIONS:
        raise TLSConfigError(f"--tls-min-version must be one of {', '.join(TLS_VERSIONS)} (got {value!r})")
    notes = []
    if value in _RAISED_VERSIONS:
        notes.append(
            f"--tls-min-version={value} raised to 1.2: TLS 1.0 and 1.1 are broken, and kube-apiserver "
            "always speaks TLS 1.2 or later"
        )
    return TLS_VERSIONS[value], notes


def cipher_string(suites: str) -> tuple[str | None, list[str]]:
    """OpenSSL cipher string for ``--tls-cipher-suites`` (None keeps the secure default set) and notes to log."""
    names = list(dict.fromkeys(n.strip() for n in suites.split(",") if n.strip()))
    if not names:
        return None, []
    unknown = [n for n in names if n not in CIPHERS and n not in TLS13_SUITES]
    if unknown:
        raise TLSConfigError(
            f"unknown TLS cipher suite {', '.join(map(repr, unknown))} in --tls-cipher-suites; "
            f"accepted: {', '.join([*sorted(TLS13_SUITES), *sorted(CIPHERS)])}"
        )
    notes = []
    dropped = [n for n in names if n in CIPHERS and CIPHERS[n] is None]
    if dropped:
        notes.append(f"--tls-cipher-suites: insecure cipher suites dropped: {', '.join(dropped)}")
    openssl = list(dict.fromkeys(c for n in names if (c := CIPHERS.get(n))))
    if not openssl:
        notes.append(
            "--tls-cipher-suites names no usable TLS 1.2 cipher suite: TLS 1.2 keeps the secure default set"
            + (" (TLS 1.3 suites are always on)" if any(n in TLS13_SUITES for n in names) else "")
        )
        return None, notes
    return ":".join(openssl), notes


def reload_interval() -> float:
    """Seconds between polls of the certificate files: RELOAD_INTERVAL unless the environment says otherwise."""
    return env_seconds(RELOAD_INTERVAL_ENV, RELOAD_INTERVAL)


@dataclass(frozen=True, slots=True)
class ServedPair:
    """One certificate/key pair as loaded: the context serving it and what it says about itself."""

    context: ssl.SSLContext
    fingerprint: bytes
    not_after: float
    serial: int


class ServingTLS:
    """Owns the listener's SSLContext and keeps the pair it serves in step with the certificate files.

    ``notes`` holds what the flags made us change (a raised TLS floor, dropped cipher suites); the
    caller logs them once logging is set up (:meth:`log_notes`).
    """

    def __init__(self, cert: str, key: str, min_version: str = "1.2", cipher_suites: str = "") -> None:
        self._min_version, version_notes = min_tls_version(min_version)
        self._ciphers, cipher_notes = cipher_string(cipher_suites)
        self.notes = [*version_notes, *cipher_notes]
        self.cert = Path(cert)
        self.key = Path(key)
        self._failed = b""  # fingerprint of the last pair that did not load: not retried, not relogged
        try:
            cert_pem, key_pem = self._read()
            served = self._load(cert_pem, key_pem)
            # The listener's context: only read from now on. It holds the first pair too, and its
            # callback moves every new handshake to the current pair's context.
            self.context = self._new_context()
            _load_pem(self.context, cert_pem, key_pem)
        except TLSConfigError:
            raise
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise TLSConfigError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from None
        self.context.sni_callback = self._select
        self._served = served
        metrics.CERT_EXPIRY.set(served.not_after)

    @property
    def served(self) -> ServedPair:
        """The pair new handshakes get; replaced as a whole by a successful reload."""
        return self._served

    @property
    def loaded(self) -> bool:
        """For /readyz: a valid pair is being served (construction fails without one)."""
        return self._served is not None

    @property
    def not_after(self) -> float:
        """Expiry (Unix time) of the certificate being served."""
        return self._served.not_after

    def log_notes(self) -> None:
        for note in self.notes:
            log.warning(note)

    def _select(self, ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext) -> None:
        ssl_object.context = self._served.context

    def _new_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = self._min_version
        if self._ciphers:
            try:
                context.set_ciphers(self._ciphers)
            except ssl.SSLError as exc:
                raise TLSConfigError(f"--tls-cipher-suites not usable: {exc}") from None
        return context

    def _read(self) -> tuple[bytes, bytes]:
        return self.cert.read_bytes(), self.key.read_bytes()

    def _load(self, cert_pem: bytes, key_pem: bytes) -> ServedPair:
        """A fresh context serving exactly these bytes; raises if they are not a matching pair."""
        certificate = x509.load_pem_x509_certificate(cert_pem)  # the leaf, as OpenSSL takes it
        context = self._new_context()
        _load_pem(context, cert_pem, key_pem)
        return ServedPair(
            context,
            _fingerprint(cert_pem, key_pem),
            certificate.not_valid_after_utc.timestamp(),
            certificate.serial_number,
        )

    def reload(self) -> bool:
        """Serve the pair on disk if its bytes changed and it loads; True when a new pair was swapped in."""
        cert_pem, key_pem = self._read()
        fingerprint = _fingerprint(cert_pem, key_pem)
        if fingerprint in (self._served.fingerprint, self._failed):
            return False
        try:
            served = self._load(cert_pem, key_pem)
        except (ssl.SSLError, ValueError):
            self._failed = fingerprint  # the same bytes would fail the same way
            raise
        self._served = served  # one reference: handshakes, /readyz and the metric move together
        self._failed = b""
        metrics.CERT_EXPIRY.set(served.not_after)
        return True

    async def watch(self, interval: float | None = None) -> None:
        period = reload_interval() if interval is None else interval
        while True:
            await asyncio.sleep(period)
            try:
                if self.reload():
                    metrics.CERT_RELOADS.labels("success").inc()
                    log.info(
                        "serving certificate reloaded",
                        extra={"fields": {"not_after": self.not_after, "serial": f"{self._served.serial:x}"}},
                    )
            except (OSError, ssl.SSLError, ValueError) as exc:
                # Mid-rotation the new cert may not match the old key yet: keep serving, retry.
                metrics.CERT_RELOADS.labels("error").inc()
                log.warning("serving certificate reload failed, keeping the current one: %s", exc)


def _fingerprint(cert_pem: bytes, key_pem: bytes) -> bytes:
    return hashlib.sha256(cert_pem + b"\0" + key_pem).digest()


def _load_pem(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """``load_cert_chain`` from bytes already read, so what is served is exactly what was inspected."""
    with _private_file(cert_pem) as cert_path, _private_file(key_pem) as key_path:
        context.load_cert_chain(cert_path, key_path, password=_no_password)


def _no_password() -> bytes:
    # An encrypted key fails to load instead of OpenSSL prompting on a terminal from the event loop.
    return b""


@contextlib.contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    """A path only this process can open, holding ``data``: an anonymous memory file where Linux has them
    (no writable filesystem needed), else a 0600 file in a private temporary directory."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("irsa-webhook-tls", os.MFD_CLOEXEC)
        try:
            os.fchmod(fd, 0o600)
            _write_all(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="irsa-webhook-tls-") as folder:  # created 0700
        path = os.path.join(folder, "pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        yield path


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
