"""STS's AssumeRoleWithWebIdentity as AWS performs it, in front of moto (whose own checks nothing:
a garbage token for a role that does not exist gets credentials there).

For ``Action=AssumeRoleWithWebIdentity`` the token and the role go through AWS's checks, in order
(:meth:`VerifyingSTS.verify`); only then is the request passed to moto, which mints credentials that
moto's ``GetCallerIdentity`` knows, and the answer gains the fields moto leaves out
(SubjectFromWebIdentityToken, Audience, Provider). Every other action is passed on unchanged.

1. the token parses as a JWT (else InvalidIdentityToken);
2. an IAM OIDC provider in moto has the URL ``iss`` without ``https://`` (else InvalidIdentityToken
   "No OpenIDConnect provider found in your account for <iss>");
3. ``azp``, or else one of ``aud``, is in the provider's client IDs (else "Incorrect token audience");
4. the issuer's discovery document and JWKS are fetched over HTTPS as STS fetches them
   (:mod:`.oidcfetch`: IDPCommunicationError when unreachable, InvalidIdentityToken "Couldn't
   retrieve verification key..." when not served), and the document's ``issuer`` equals ``iss``;
5. the header's ``kid`` is in that JWKS, its ``alg`` is one STS accepts, the signature verifies;
6. ``exp`` is in the future (else ExpiredTokenException); ``nbf``/``iat`` not in the future; ``sub`` present;
7. the role exists with exactly the ARN asked for (path included), and its trust policy (read from
   moto, URL-decoded, evaluated by :mod:`.policy`) allows the provider as Federated principal
   ``sts:AssumeRoleWithWebIdentity`` under the token's condition keys ``<host/path>:sub``,
   ``:aud`` (``azp`` if present, else ``aud``), ``:amr``, ``:oaud``; else AccessDenied
   "Not authorized to perform sts:AssumeRoleWithWebIdentity" (HTTP 403, as AWS);
8. ``DurationSeconds`` within the role's MaxSessionDuration.

The keys are cached for ``jwks_ttl`` seconds (0: fetched for every call) and a kid missing from a
cached set is not refetched: that is how a signer switched before the new key was published, and
before caches expired, fails. :meth:`advance` moves this stand-in's clock (cache and token times)
without sleeping. Each decision is recorded in :attr:`decisions`.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import jwt
from botocore.exceptions import ClientError

from .awsxml import QUERY_XML_HEADERS, Refused, query_error
from .claims import audience as token_audience
from .claims import condition_keys, recorded_claims
from .httpd import LoopbackServer, QuietHandler, Upstream
from .motoserver import Credentials, admin_client
from .oidcfetch import NO_KEY, IssuerKeys
from .policy import Request, UnsupportedPolicy, evaluate, load_policy

ACTION = "sts:AssumeRoleWithWebIdentity"
ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})
NOT_AUTHORIZED = "Not authorized to perform sts:AssumeRoleWithWebIdentity"
# How far nbf/iat may lie in the future: clocks of an issuer and of STS are never exactly equal.
CLOCK_SKEW_SECONDS = 300.0


@dataclass(frozen=True)
class Decision:
    role_arn: str
    subject: str | None
    audience: str | None
    issuer: str | None
    kid: str | None
    allowed: bool
    code: str | None  # the AWS error code of a refusal
    reason: str


@dataclass(frozen=True)
class Verified:
    claims: dict[str, Any]
    provider_arn: str
    audience: str


class VerifyingSTS:
    """The verifying STS on 127.0.0.1 (``url``: set ``AWS_ENDPOINT_URL_STS`` to it). IAM is read from
    ``moto_url``; requests are passed on to ``upstream`` (default: moto itself, or e.g. a
    :class:`~tests.support.standins.recorder.CallRecorder` in front of it)."""

    def __init__(
        self,
        moto_url: str,
        *,
        ca_file: Path | None = None,
        upstream: str | None = None,
        jwks_ttl: float = 0.0,
        region: str = "us-east-1",
        credentials: Credentials | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.upstream = upstream or moto_url
        self.decisions: list[Decision] = []
        self._iam = admin_client(moto_url, "iam", region, credentials)
        self._offset = 0.0
        self._lock = threading.Lock()
        self.keys = IssuerKeys(ca_file, jwks_ttl, self.now)
        self._server = LoopbackServer(_handler(self), host=host)
        self.url = self._server.url

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move this stand-in's clock forward (JWKS cache age and token times alike)."""
        self._offset += seconds

    @property
    def fetches(self) -> list[str]:
        """Every discovery document and JWKS URL fetched so far, in order."""
        return self.keys.fetches

    def stop(self) -> None:
        self._server.stop()
        self.keys.close()

    def __enter__(self) -> VerifyingSTS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the checks --------------------------------------------------------------------------

    def decide(self, params: dict[str, str]) -> tuple[Verified | None, Refused | None]:
        """Run :meth:`verify` and record the decision."""
        role_arn = params.get("RoleArn", "")
        claims: dict[str, Any] = {}
        try:
            verified = self.verify(params, claims)
        except Refused as refused:
            self._record(Decision(role_arn, *recorded_claims(claims), False, refused.code, refused.reason))
            return None, refused
        except Exception as exc:  # a stand-in bug must show in the test, not as a dropped connection
            failed = Refused("InternalFailure", f"stand-in error: {type(exc).__name__}: {exc}", status=500)
            self._record(Decision(role_arn, *recorded_claims(claims), False, failed.code, failed.reason))
            return None, failed
        self._record(Decision(role_arn, *recorded_claims(claims), True, None, "allowed"))
        return verified, None

    def _record(self, decision: Decision) -> None:
        with self._lock:
            self.decisions.append(decision)

    def verify(self, params: dict[str, str], seen: dict[str, Any]) -> Verified:
        """AWS's checks (module docstring), in order; ``seen`` receives the unverified claims and kid
        as soon as they are known, for the record."""
        token = params.get("WebIdentityToken", "")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Refused(
                "InvalidIdentityToken", "The ID token provided is not a valid JWT", f"not a JWT: {exc}"
            ) from exc
        seen.update(claims, _kid=header.get("kid"))
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer.startswith("https://"):
            raise Refused("InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {issuer}")
        provider_arn, client_ids = self._provider(issuer)
        audience = token_audience(claims, client_ids)
        jwk = self._key(issuer, header)
        self._signature(token, header, jwk)
        self._times(claims)
        self._role(params, claims, provider_arn, issuer)
        return Verified(claims, provider_arn, audience)

    def _provider(self, issuer: str) -> tuple[str, list[str]]:
        url = issuer.removeprefix("https://")
        for entry in self._iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
            provider = self._iam.get_open_id_connect_provider(OpenIDConnectProviderArn=entry["Arn"])
            if provider["Url"] == url:
                return entry["Arn"], list(provider.get("ClientIDList", []))
        raise Refused("InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {issuer}")

    def _key(self, issuer: str, header: dict[str, Any]) -> dict[str, Any]:
        keys = self.keys.jwks(issuer)
        kid = header.get("kid")
        candidates = [k for k in keys.get("keys", []) if isinstance(k, dict) and (kid is None or k.get("kid") == kid)]
        if len(candidates) != 1:
            raise Refused("InvalidIdentityToken", NO_KEY, f"kid {kid!r} is not in the issuer's JWKS")
        alg = header.get("alg")
        if alg not in ALGORITHMS or candidates[0].get("alg", alg) != alg:
            raise Refused("InvalidIdentityToken", f"Unsupported or mismatched token algorithm {alg}")
        return candidates[0]

    def _signature(self, token: str, header: dict[str, Any], jwk: dict[str, Any]) -> None:
        try:
            key = jwt.PyJWK(jwk, algorithm=header["alg"]).key
            jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                options={
                    "verify_exp": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise Refused(
                "InvalidIdentityToken",
                "The signature of the web identity token is invalid",
                f"signature: {type(exc).__name__}: {exc}",
            ) from exc

    def _times(self, claims: dict[str, Any]) -> None:
        now = self.now()
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise Refused("InvalidIdentityToken", "The web identity token has no expiration (exp)")
        if now >= exp:
            raise Refused(
                "ExpiredTokenException",
                f"Token expired: current date/time {int(now)} must be before the expiration date/time{int(exp)}",
            )
        for claim in ("nbf", "iat"):
            value = claims.get(claim)
            if isinstance(value, int | float) and value > now + CLOCK_SKEW_SECONDS:
                raise Refused("InvalidIdentityToken", f"The web identity token's {claim} is in the future")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Refused("InvalidIdentityToken", "The web identity token has no subject (sub)")

    def _role(self, params: dict[str, str], claims: dict[str, Any], provider_arn: str, issuer: str) -> None:
        role_arn = params.get("RoleArn", "")
        name = role_arn.rsplit("/", 1)[-1]
        try:
            role = self._iam.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            raise Refused("AccessDenied", NOT_AUTHORIZED, f"role {role_arn}: {exc}", 403) from exc
        if role["Arn"] != role_arn:
            raise Refused("AccessDenied", NOT_AUTHORIZED, f"no role {role_arn} (there is {role['Arn']})", 403)
        request = Request("Federated", provider_arn, ACTION, None, condition_keys(claims, issuer, provider_arn, params))
        try:
            verdict = evaluate(load_policy(role["AssumeRolePolicyDocument"]), request)
        except UnsupportedPolicy as exc:
            raise Refused("AccessDenied", NOT_AUTHORIZED, f"trust policy not evaluated: {exc}", 403) from exc
        if not verdict.allowed:
            raise Refused("AccessDenied", NOT_AUTHORIZED, f"trust policy of {role_arn}: {verdict.reason}", 403)
        duration = int(params.get("DurationSeconds") or 3600)
        if duration > int(role.get("MaxSessionDuration", 3600)):
            raise Refused(
                "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
            )


def credentials_answer(upstream: Upstream, verified: Verified) -> Upstream:
    """moto's answer with the fields AWS adds and moto leaves out."""
    extra = (
        f"<SubjectFromWebIdentityToken>{escape(str(verified.claims['sub']))}</SubjectFromWebIdentityToken>"
        f"<Audience>{escape(verified.audience)}</Audience>"
        f"<Provider>{escape(verified.provider_arn)}</Provider>"
    ).encode()
    closing = b"</AssumeRoleWithWebIdentityResult>"
    if upstream.status != 200 or closing not in upstream.body:
        return upstream
    return Upstream(upstream.status, upstream.headers, upstream.body.replace(closing, extra + closing, 1))


def _params(path: str, body: bytes, content_type: str) -> dict[str, str]:
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
    if content_type.startswith("application/x-www-form-urlencoded"):
        params.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
    return params


def _handler(sts: VerifyingSTS) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def _serve(self) -> None:
            body = self.body()
            params = _params(self.path, body, self.headers.get("Content-Type", ""))
            if params.get("Action") != "AssumeRoleWithWebIdentity":
                self.relay(self.forward(sts.upstream, body))
                return
            verified, refused = sts.decide(params)
            if refused is not None:
                self.answer(refused.status, query_error(refused.code, refused.message), QUERY_XML_HEADERS)
                return
            assert verified is not None
            self.relay(credentials_answer(self.forward(sts.upstream, body), verified))

        def do_POST(self) -> None:
            self._serve()

        def do_GET(self) -> None:
            self._serve()

    return Handler
