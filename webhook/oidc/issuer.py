"""The service-account issuer URL: validation, and the ``host/path`` form IAM uses for it.

The same string has to appear, byte for byte, in four places: kube-apiserver's
``--service-account-issuer`` (and so every token's ``iss``), the discovery document's ``issuer``,
the IAM OIDC provider's URL, and (without ``https://``) the trust policy's principal and condition
keys. STS compares them exactly, so anything that could make them drift is refused up front:

* the scheme must be ``https`` (IAM only accepts https providers, and OIDC discovery requires it);
* no trailing slash: ``https://x/`` and ``https://x`` are different issuers, and a trailing slash
  turns the discovery URL into ``https://x//.well-known/openid-configuration``;
* no query string, fragment or user info (OIDC Discovery 1.0 section 3 forbids them);
* a host is required.

A port is allowed (kube-apiserver accepts it), but IAM's documentation says the provider URL
should not contain one; :func:`port_note` returns the note the commands print in that case.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from webhook.oidc.errors import InputError


def validate_https_url(url: str, what: str) -> str:
    """Return ``url`` if it is an absolute https URL with a host and no user info, else raise."""
    if not url:
        raise InputError(f"{what} is empty")
    parts = urlsplit(url)
    # startswith, not parts.scheme: urlsplit lowercases the scheme, and "HTTPS://" would then
    # survive into the provider name (host_path strips only the lowercase prefix).
    if not url.startswith("https://"):
        raise InputError(f"{what} {url!r} must start with https:// (IAM accepts only https OIDC providers)")
    if not parts.hostname:
        raise InputError(f"{what} {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise InputError(f"{what} {url!r} must not contain user info")
    return url


def validate_issuer(issuer: str, what: str = "issuer") -> str:
    """Return ``issuer`` unchanged if it is usable (see the module docstring), else raise."""
    validate_https_url(issuer, what)
    if urlsplit(issuer).query or urlsplit(issuer).fragment or issuer.endswith(("?", "#")):
        raise InputError(f"{what} {issuer!r} must not contain a query string or fragment")
    if issuer.endswith("/"):
        raise InputError(
            f"{what} {issuer!r} ends with '/': remove it ({issuer.rstrip('/')!r}); "
            "the issuer must match the tokens' iss claim exactly"
        )
    return issuer


def host_path(issuer: str) -> str:
    """``https://host[:port]/path`` -> ``host[:port]/path``: the IAM provider name for the issuer."""
    return issuer.removeprefix("https://")


def port_note(issuer: str) -> str | None:
    """A one-line note when ``issuer`` has a port (IAM provider URLs should not), else None."""
    if urlsplit(issuer).port is None:
        return None
    return f"note: issuer {issuer!r} contains a port; IAM OIDC provider URLs should not contain one"
