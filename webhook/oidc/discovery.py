"""The OIDC discovery document published at ``<issuer>/.well-known/openid-configuration``.

STS reads it to find ``jwks_uri``; the fields are those kube-apiserver serves at its own
``/.well-known/openid-configuration`` (issuer, jwks_uri, response_types_supported,
subject_types_supported, id_token_signing_alg_values_supported), plus ``claims_supported``
(``sub``, ``iss``), which is what the EKS-hosted issuers publish.
"""

from __future__ import annotations

from collections.abc import Sequence

from webhook.oidc.issuer import validate_https_url, validate_issuer
from webhook.oidc.jwks import JSONObject

# Where the JWKS goes relative to the issuer unless --jwks-uri says otherwise: the file name the
# upstream self-hosted guide and the EKS issuers use.
DEFAULT_JWKS_PATH = "/keys.json"
# Path of the discovery document below the issuer (OIDC Discovery 1.0 section 4).
DISCOVERY_PATH = ".well-known/openid-configuration"
# With no --key to look at, the algorithm of `keys generate`'s default RSA key.
DEFAULT_ALGORITHMS = ("RS256",)


def default_jwks_uri(issuer: str) -> str:
    """``issuer`` + ``/keys.json``."""
    return issuer + DEFAULT_JWKS_PATH


def discovery_document(
    issuer: str,
    jwks_uri: str | None = None,
    algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
) -> JSONObject:
    """The discovery document for ``issuer``; raises InputError for an unusable issuer/jwks_uri."""
    validate_issuer(issuer)
    uri = default_jwks_uri(issuer) if jwks_uri is None else jwks_uri
    if jwks_uri is not None:
        validate_https_url(jwks_uri, what="--jwks-uri")
    return {
        "issuer": issuer,
        "jwks_uri": uri,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(algorithms or DEFAULT_ALGORITHMS),
        "claims_supported": ["sub", "iss"],
    }
