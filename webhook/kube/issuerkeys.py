"""What kube-apiserver says about its service-account keys: the key set it verifies tokens with (its
``/openid/v1/jwks``) and the key it signs new tokens with (the ``kid`` in the header of a token it
issues now, requested for a probe ServiceAccount through the TokenRequest API).

Neither read ever raises: a failure becomes one line in :attr:`IssuerKeys.error` that says what to
grant or fix, because the provisioner turns it into a condition message, not a crash. The probe token
is decoded for its header only and never logged or kept.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.kube import rawapi
from webhook.kube.objects import LOG_VALUE_CHARS, describe

JWKS_PATH = "/openid/v1/jwks"
# The shortest lifetime kube-apiserver accepts (it refuses less than 10 minutes): the token is used
# for its header only, and dies soon.
PROBE_TOKEN_SECONDS = 600


@dataclass(frozen=True)
class IssuerKeys:
    """kube-apiserver's keys as read now; None where a read failed, and ``error`` says why."""

    jwks: dict[str, Any] | None
    signing_kid: str | None
    error: str | None = None


def read_cluster_keys(api: client.ApiClient, probe: tuple[str, str] | None) -> IssuerKeys:
    """The published key set and the signing kid; ``probe`` is the (namespace, name) of the
    ServiceAccount a token is requested for (None: the signing key is not looked up)."""
    errors: list[str] = []
    jwks = _read_jwks(api, errors)
    kid = None
    if probe is None:
        errors.append("no probe ServiceAccount is configured: the signing key cannot be checked")
    else:
        kid = _signing_kid(api, probe, errors)
    return IssuerKeys(jwks, kid, "; ".join(errors) or None)


def _read_jwks(api: client.ApiClient, errors: list[str]) -> dict[str, Any] | None:
    try:
        # The API server serves this path only as the JWK Set media type (406 for application/json).
        jwks = rawapi.call(api, "GET", JWKS_PATH, accept="application/jwk-set+json")
    except ApiException as exc:
        errors.append(f"cannot read {JWKS_PATH}: {_api_problem(exc, f'get on the non-resource URL {JWKS_PATH}')}")
        return None
    except Exception as exc:
        errors.append(f"cannot read {JWKS_PATH}: {describe(exc)}: check that the API server is reachable")
        return None
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
        errors.append(f"{JWKS_PATH} is not a JSON Web Key Set (no list of keys)")
        return None
    result: dict[str, Any] = jwks
    return result


def _signing_kid(api: client.ApiClient, probe: tuple[str, str], errors: list[str]) -> str | None:
    namespace, name = probe
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        # No audiences: the API server's own, which every cluster accepts.
        "spec": {"expirationSeconds": PROBE_TOKEN_SECONDS},
    }
    where = f"ServiceAccount {namespace}/{name}"
    try:
        answer = rawapi.call(api, "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", body=body)
    except ApiException as exc:
        if exc.status == 404:
            errors.append(f"cannot request a token: {where} not found: create it or name another probe ServiceAccount")
        else:
            grant = f"create on serviceaccounts/token for {where}"
            errors.append(f"cannot request a token for {where}: {_api_problem(exc, grant)}")
        return None
    except Exception as exc:
        errors.append(f"cannot request a token for {where}: {describe(exc)}: check that the API server is reachable")
        return None
    status = answer.get("status") if isinstance(answer, dict) else None
    token = status.get("token") if isinstance(status, dict) else None
    kid = header_kid(token) if isinstance(token, str) else None
    if kid is None:
        errors.append(f"the token issued for {where} has no kid in its header: the signing key is unknown")
    return kid


def header_kid(token: str) -> str | None:
    """The ``kid`` of a compact JWS's protected header, without looking at the rest of the token."""
    encoded = token.split(".", 1)[0]
    try:
        header = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) and kid else None


def _api_problem(exc: ApiException, grant: str) -> str:
    """One line for an API error: what to grant for a 401/403, else the server's message."""
    if exc.status == 403:
        return f"forbidden: grant the provisioner's ServiceAccount {grant}"
    if exc.status == 401:
        return "unauthorized: the provisioner's credentials are not accepted by the API server"
    return f"HTTP {exc.status}: {rawapi.status_message(exc)[:LOG_VALUE_CHARS]}"
