"""How STS gets an issuer's keys: ``<iss>/.well-known/openid-configuration``, then its ``jwks_uri``,
both over HTTPS, with a cache.

Failures are told apart as AWS tells them apart: an issuer that cannot be reached (connection
refused, timeout, a certificate not trusted) is IDPCommunicationError, which botocore retries; one
that answers but does not serve the documents (403 from a bucket that is not public, 404, not JSON,
another ``issuer``) is InvalidIdentityToken "Couldn't retrieve verification key...", the message
AWS users meet when their issuer's bucket is not public.

The cache keeps both documents per issuer for ``ttl`` seconds on the owner's clock (0: fetched for
every call); a kid missing from a cached set does not trigger a refetch.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .awsxml import Refused

NO_KEY = (
    "Couldn't retrieve verification key from your identity provider, "
    "please reference AssumeRoleWithWebIdentity documentation for requirements"
)
FETCH_TIMEOUT_SECONDS = 5.0  # STS gives an issuer a few seconds, not minutes


@dataclass(frozen=True)
class _Cached:
    fetched_at: float
    jwks: dict[str, Any]


class IssuerKeys:
    """The JWKS of an issuer, fetched as STS fetches it; TLS verified against ``ca_file`` (else the
    system's CAs), no proxy (STS reaches the internet directly)."""

    def __init__(self, ca_file: Path | None, ttl: float, now: Callable[[], float]) -> None:
        self.ttl = ttl
        self.fetches: list[str] = []
        self._now = now
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._http = httpx.Client(verify=context, trust_env=False, timeout=FETCH_TIMEOUT_SECONDS)

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        self._http.close()

    def jwks(self, issuer: str) -> dict[str, Any]:
        with self._lock:
            cached = self._cache.get(issuer)
        if cached is not None and self._now() - cached.fetched_at < self.ttl:
            return cached.jwks
        discovery = self._fetch(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if discovery.get("issuer") != issuer:
            reason = f"discovery issuer {discovery.get('issuer')!r} is not the token's iss {issuer!r}"
            raise Refused("InvalidIdentityToken", NO_KEY, reason)
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise Refused("InvalidIdentityToken", NO_KEY, f"jwks_uri {jwks_uri!r} is not an https URL")
        keys = self._fetch(jwks_uri)
        with self._lock:
            self._cache[issuer] = _Cached(self._now(), keys)
        return keys

    def _fetch(self, url: str) -> dict[str, Any]:
        with self._lock:
            self.fetches.append(url)
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:
            reason = f"GET {url}: {type(exc).__name__}: {exc}"
            raise Refused("IDPCommunicationError", "Couldn't connect to the identity provider", reason) from exc
        if response.status_code != 200:
            raise Refused("InvalidIdentityToken", NO_KEY, f"GET {url}: HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError as exc:
            raise Refused("InvalidIdentityToken", NO_KEY, f"GET {url}: not JSON") from exc
        if not isinstance(document, dict):
            raise Refused("InvalidIdentityToken", NO_KEY, f"GET {url}: not a JSON object")
        return document
