"""Can STS read the issuer? Fetch both documents anonymously over HTTPS, as STS will, and check them.

STS resolves a web identity token by fetching ``<iss>/.well-known/openid-configuration``, then its
``jwks_uri``, with no credentials; it rejects the token when the document's ``issuer`` is not the
token's ``iss`` byte for byte, and when no published key has the token's ``kid``. Publishing to S3
can succeed while all of that fails (a public access block, a bucket policy that names the wrong
key, a typo in the issuer), so the provisioner checks the result the way STS sees it.

The fetch uses the standard library's opener, which honours ``HTTPS_PROXY``/``https_proxy`` and
``NO_PROXY``/``no_proxy`` (CONNECT tunnels through the proxy), and a default TLS context, whose
trust store OpenSSL takes from ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when they are set: the same
variables AWS tools and curl honour behind a corporate proxy or TLS inspection.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from webhook.oidc.discovery import DISCOVERY_PATH

# Both documents are a few KiB; anything much larger is not an issuer's document.
MAX_DOCUMENT_BYTES = 1 << 20
TIMEOUT = 10.0
ACCEPT = "application/json, application/jwk-set+json"


@dataclass(frozen=True)
class Published:
    """What an anonymous client reads at the issuer: ``ok`` with the served ``kids``, or why not."""

    ok: bool
    message: str
    kids: tuple[str, ...] = ()


class _Unreadable(Exception):
    pass


def check_published(issuer: str, expected_kids: Sequence[str] = (), timeout: float = TIMEOUT) -> Published:
    """Fetch the discovery document and the JWKS of ``issuer`` as STS does and check them.

    ``ok`` when the discovery document's ``issuer`` is exactly ``issuer``, ``jwks_uri`` is https,
    the JWKS is a key set, and every kid of ``expected_kids`` is served. Never raises.
    """
    discovery_url = f"{issuer}/{DISCOVERY_PATH}"
    try:
        discovery = _fetch_json(discovery_url, timeout)
        served_issuer = discovery.get("issuer")
        if served_issuer != issuer:
            return Published(
                False,
                f"{discovery_url} says issuer {served_issuer!r}, not {issuer!r}: STS refuses every token "
                "until they are equal byte for byte",
            )
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            return Published(False, f"{discovery_url} has no https jwks_uri (found {jwks_uri!r})")
        jwks = _fetch_json(jwks_uri, timeout)
    except _Unreadable as exc:
        return Published(False, str(exc))
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        return Published(False, f"{jwks_uri} is not a key set (no 'keys' list)")
    kids = tuple(key["kid"] for key in keys if isinstance(key, dict) and isinstance(key.get("kid"), str))
    missing = [kid for kid in expected_kids if kid not in kids]
    if missing:
        return Published(
            False,
            f"{jwks_uri} does not serve key(s) {', '.join(missing)} yet (a cache in front of it, or the "
            "upload has not happened)",
            kids,
        )
    return Published(True, f"{discovery_url} and {jwks_uri} are readable anonymously and agree", kids)


def _fetch_json(url: str, timeout: float) -> dict[str, object]:
    # ProxyHandler() with no argument reads the proxy variables at call time; the default context
    # verifies the certificate and host name against the default trust store (SSL_CERT_FILE).
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler(), urllib.request.HTTPSHandler(context=ssl.create_default_context())
    )
    if not url.startswith("https://"):
        raise _Unreadable(f"{url} is not an https URL: STS fetches issuer documents over https only")
    # The scheme is checked just above: no file: or custom scheme reaches the opener.
    # kube-apiserver serves its JWKS (an issuer it serves itself) only as the JWK Set media type: HTTP
    # 406 to a client accepting application/json alone. S3 and other hosts answer either way.
    request = urllib.request.Request(url, headers={"Accept": ACCEPT})  # noqa: S310 (no credentials: as STS)
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        hint = " (not public: check the bucket policy and the public access block)" if exc.code == 403 else ""
        raise _Unreadable(f"GET {url} answered HTTP {exc.code}{hint}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise _Unreadable(
                f"GET {url}: the TLS certificate is not trusted ({reason.verify_message}); behind TLS "
                "inspection set SSL_CERT_FILE to the CA bundle"
            ) from exc
        raise _Unreadable(f"GET {url} failed: {reason}") from exc
    except OSError as exc:  # timeouts included
        raise _Unreadable(f"GET {url} failed: {exc}") from exc
    if len(body) > MAX_DOCUMENT_BYTES:
        raise _Unreadable(f"GET {url}: the document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Unreadable(f"GET {url}: the body is not JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise _Unreadable(f"GET {url}: the body is not a JSON object")
    return document
