"""What STS reads from a web identity token's claims: the audience it checks against the provider's
client IDs, and the condition keys a trust policy is evaluated with (AWS's documented keys for an
IAM OIDC provider: ``<host/path>:sub``, ``:aud`` = ``azp`` when present else ``aud``, ``:oaud``,
``:amr``; plus ``aws:FederatedProvider`` and ``sts:RoleSessionName``)."""

from __future__ import annotations

from typing import Any

from .awsxml import Refused


def audience(claims: dict[str, Any], client_ids: list[str]) -> str:
    """The client ID the token is for: ``azp`` if present, else the first ``aud`` the provider lists."""
    audiences = [claims["azp"]] if isinstance(claims.get("azp"), str) else strings(claims.get("aud"))
    for candidate in audiences:
        if candidate in client_ids:
            return candidate
    raise Refused("InvalidIdentityToken", "Incorrect token audience", f"aud {audiences} not in {client_ids}")


def strings(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str)]


def condition_keys(
    claims: dict[str, Any], issuer: str, provider_arn: str, params: dict[str, str]
) -> dict[str, list[str]]:
    """The condition keys of a web-identity request, as AWS documents them for OIDC providers."""
    host_path = issuer.removeprefix("https://")
    aud = strings(claims.get("aud"))
    context = {
        f"{host_path}:sub": strings(claims.get("sub")),
        f"{host_path}:aud": [claims["azp"]] if isinstance(claims.get("azp"), str) else aud,
        f"{host_path}:oaud": aud,
        f"{host_path}:amr": strings(claims.get("amr")),
        "aws:FederatedProvider": [provider_arn],
        "sts:RoleSessionName": [params.get("RoleSessionName", "")],
    }
    return {key.lower(): values for key, values in context.items() if values}


def recorded_claims(claims: dict[str, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    """(sub, aud, iss, kid) for a decision's record; ``claims`` carries the header's kid as ``_kid``."""
    aud = claims.get("aud")
    return (
        claims.get("sub") if isinstance(claims.get("sub"), str) else None,
        ",".join(strings(aud)) or None,
        claims.get("iss") if isinstance(claims.get("iss"), str) else None,
        claims.get("_kid") if isinstance(claims.get("_kid"), str) else None,
    )
