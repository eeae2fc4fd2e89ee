"""ServiceAccount annotations → an :class:`~webhook.core.records.Identity`, parsed once per object.

Precedence, literally: a pod's ``token-expiration`` annotation beats its ServiceAccount's, which
beats ``--token-expiration``; the ServiceAccount's ``audience``, ``sts-regional-endpoints``,
``region`` and ``role-session-name`` beat ``--token-audience``, ``--sts-regional-endpoint``,
``--aws-default-region`` and ``--role-session-name``. With ``--compose-role-arn`` a role name in
``role-arn`` becomes a role ARN first. A bad value never denies a pod (unless ``--strict``): it falls
back to the next source and produces a warning. The pod's own annotations are read in
:mod:`webhook.core.pod`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.core.arn import REGION_RE, ROLE_ARN_RE
from webhook.core.goparse import parse_go_bool, parse_go_int
from webhook.core.records import AdmissionWarning, Identity
from webhook.core.settings import MAX_TOKEN_EXPIRATION, MIN_TOKEN_EXPIRATION, Settings

# The one value of the ServiceAccount annotation and the flag that turns session names on.
ROLE_SESSION_NAME_POD = "pod"

# -- bounds: what a tenant can make every replica hold -----------------------------------------------
# kube-apiserver lets anyone who may edit a ServiceAccount give it 256 KiB of annotations, and every
# replica's cache (and the audit) keeps what is parsed from every ServiceAccount of the cluster. A
# value longer than any service it is meant for accepts can never work, so it is not kept at all:
# one warning, and the source's default (docs/behaviour.md, "Bounds").
MAX_ROLE_ARN_CHARS = 2048  # IAM: an ARN, and AssumeRoleWithWebIdentity's RoleArn, is at most 2,048 characters
# The token's aud must be one of the IAM OIDC provider's client IDs for STS to accept it, and IAM
# caps a client ID at 255 characters.
MAX_AUDIENCE_CHARS = 255
# A region is one DNS label of every regional endpoint (sts.<region>.amazonaws.com), and a DNS label
# holds at most 63 characters (RFC 1035); today's longest names have 14.
MAX_REGION_CHARS = 63
ROLE_ARN_TOO_LONG = "role-arn-too-long"
"""A role ARN over IAM's limit: not used, so the source has no role (returned even then: see mutate)."""
TOO_LONG_SHOWN_CHARS = 40  # of an over-long value a warning shows the start: enough to recognise a role ARN


def too_long(kind: str, where: str, what: str, text: str, *, limit: int, instead: str) -> AdmissionWarning | None:
    """A warning when ``text`` is over ``limit`` characters (``what`` names the field, ``instead`` says
    what is used in its place); None when it fits. The value itself is shown only by its start, and
    last, so that a long ``where`` cuts the sample rather than the length and the limit."""
    if len(text) <= limit:
        return None
    return AdmissionWarning.make(
        kind,
        f"{where} {what} of {len(text)} characters is over {limit}; {instead}: {text[:TOO_LONG_SHOWN_CHARS]!r}...",
    )


def _annotations(meta: Any) -> Mapping[str, Any]:
    # dict, not Mapping: objects come from JSON/YAML, and an ABC isinstance check is 5x slower.
    if isinstance(meta, dict):
        ann = meta.get("annotations")
        if isinstance(ann, dict):
            return ann
    return {}


def _shown(value: Any) -> str:
    """A value for a warning: strings quoted (and cut short by the warning limit), others by type.

    Never ``str()`` of an arbitrary value: a hostile request can nest lists a thousand deep, and
    their repr raises RecursionError.
    """
    if isinstance(value, str):
        return repr(value[:80])
    return f"of type {type(value).__name__}"


def parse_expiration(raw: Any, fallback: int, where: str) -> tuple[int, AdmissionWarning | None]:
    """Token lifetime from an annotation value; bounds follow kube-apiserver's validation."""
    seconds = parse_go_int(raw) if isinstance(raw, str) else None
    if seconds is None:
        return fallback, AdmissionWarning.make(
            "invalid-token-expiration",
            f"{where} token-expiration {_shown(raw)} is not an integer; using {fallback}",
        )
    if seconds < MIN_TOKEN_EXPIRATION:
        return MIN_TOKEN_EXPIRATION, AdmissionWarning.make(
            "token-expiration-too-low",
            f"{where} token-expiration {seconds} is below {MIN_TOKEN_EXPIRATION}; using {MIN_TOKEN_EXPIRATION}",
        )
    if seconds > MAX_TOKEN_EXPIRATION:
        return MAX_TOKEN_EXPIRATION, AdmissionWarning.make(
            "token-expiration-too-high",
            f"{where} token-expiration {seconds} is above 2^32; using {MAX_TOKEN_EXPIRATION}",
        )
    return seconds, None


def scalar_text(value: Any) -> str | None:
    """An annotation value as text: strings as they are, YAML scalars (``3600``, ``true``) spelled as
    Python prints them, anything else (lists, objects, null) None.

    The API server only ever sends strings; scalars come from hand-written manifests on disk, and
    anything else from a hostile or broken request, which must produce a warning, never an error.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        try:
            return str(value)
        except ValueError:  # an int past Python's digit limit: no integer a flag could mean
            return None
    return None


def _meta_text(meta: Mapping[str, Any], key: str) -> str:
    value = meta.get(key)
    return value if isinstance(value, str) else ""


def parse_service_account(obj: Mapping[str, Any], settings: Settings) -> Identity:
    """Parse a raw ServiceAccount object (as listed/watched) into an :class:`Identity`.

    Called once per watch event; only the result is kept, never the object. It does not raise for
    any JSON value: what cannot be used becomes a default and a warning.
    """
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    return identity_from_annotations(
        _meta_text(meta, "namespace"), _meta_text(meta, "name"), _annotations(meta), settings
    )


def identity_from_annotations(
    namespace: str, name: str, annotations: Mapping[str, Any], settings: Settings
) -> Identity:
    warnings: list[AdmissionWarning] = []
    where = f"serviceaccount {namespace}/{name}"

    role_raw = annotations.get(settings.annotation("role-arn"))
    # --compose-role-arn: a role name becomes a role ARN here, so the checks below see the final value.
    role_arn = settings.composed_role_arn(scalar_text(role_raw) or "")
    long_role = too_long(ROLE_ARN_TOO_LONG, where, "role-arn", role_arn, limit=MAX_ROLE_ARN_CHARS, instead="no role")
    if long_role is not None:
        warnings.append(long_role)
        role_arn = ""
    elif role_raw and not role_arn:
        warnings.append(AdmissionWarning.make("invalid-role-arn", f"{where} role-arn {_shown(role_raw)} is unusable"))
    elif role_arn and not ROLE_ARN_RE.fullmatch(role_arn):
        # Still injected, as upstream does: an unusual partition must not break existing pods.
        warnings.append(
            AdmissionWarning.make("invalid-role-arn", f"{where} role-arn {_shown(role_arn)} is not an IAM role ARN")
        )

    audience = settings.token_audience
    audience_raw = annotations.get(settings.annotation("audience"))
    if audience_raw is not None:
        audience_text = scalar_text(audience_raw)
        if audience_text is None:
            warnings.append(
                AdmissionWarning.make(
                    "invalid-audience", f"{where} audience {_shown(audience_raw)} is not a string; using {audience!r}"
                )
            )
        else:
            long_audience = too_long(
                "audience-too-long",
                where,
                "audience",
                audience_text,
                limit=MAX_AUDIENCE_CHARS,
                instead=f"using {audience!r}",
            )
            if long_audience is not None:
                warnings.append(long_audience)
            else:
                audience = audience_text

    sts = settings.sts_regional_endpoint
    sts_raw = annotations.get(settings.annotation("sts-regional-endpoints"))
    if sts_raw is not None:
        sts_text = scalar_text(sts_raw)
        parsed = parse_go_bool(sts_text) if sts_text is not None else None
        if parsed is None:
            warnings.append(
                AdmissionWarning.make(
                    "invalid-sts-regional-endpoints",
                    f"{where} sts-regional-endpoints {_shown(sts_text if sts_text is not None else sts_raw)} "
                    f"is not a boolean; using {str(sts).lower()}",
                )
            )
        else:
            sts = parsed

    expiration = settings.token_expiration
    exp_raw = annotations.get(settings.annotation("token-expiration"))
    if exp_raw is not None:
        exp_text = scalar_text(exp_raw)
        expiration, warning = parse_expiration(
            exp_text if exp_text is not None else exp_raw, settings.token_expiration, where
        )
        if warning:
            warnings.append(warning)

    region = _region(annotations.get(settings.annotation("region")), where, warnings)
    session_name = _session_name(annotations.get(settings.annotation("role-session-name")), where, warnings)

    return Identity(
        namespace=namespace,
        name=name,
        role_arn=role_arn,
        audience=audience,
        sts_regional_endpoints=sts,
        token_expiration=expiration,
        warnings=tuple(warnings),
        region=region,
        role_session_name=session_name,
    )


def _region(raw: Any, where: str, warnings: list[AdmissionWarning]) -> str | None:
    """The ``region`` annotation [ours]: None (absent, empty or unusable) leaves it to the flag."""
    if raw is None:
        return None
    text = scalar_text(raw)
    if text is None:
        warnings.append(
            AdmissionWarning.make("invalid-region", f"{where} region {_shown(raw)} is not a string; ignored")
        )
        return None
    if not text:
        return None
    long_region = too_long("region-too-long", where, "region", text, limit=MAX_REGION_CHARS, instead="ignored")
    if long_region is not None:
        warnings.append(long_region)
        return None
    if not REGION_RE.fullmatch(text):
        # Used anyway, as a role ARN that looks wrong is: the SDK will say what it thinks of it.
        warnings.append(
            AdmissionWarning.make("invalid-region", f"{where} region {_shown(text)} does not look like an AWS region")
        )
    return text


def _session_name(raw: Any, where: str, warnings: list[AdmissionWarning]) -> bool | None:
    """The ``role-session-name`` annotation [ours]: ``pod`` turns it on; anything else is ignored."""
    if raw is None:
        return None
    if raw == ROLE_SESSION_NAME_POD:
        return True
    warnings.append(
        AdmissionWarning.make(
            "invalid-role-session-name",
            f"{where} role-session-name {_shown(raw)} is not {ROLE_SESSION_NAME_POD!r}; ignored",
        )
    )
    return None


def pod_annotations(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return _annotations(pod.get("metadata"))


def container_names(annotations: Mapping[str, Any], key: str) -> frozenset[str]:
    """Names from a comma-separated container list annotation, trimmed of spaces [ours]; empty items ignored."""
    raw = annotations.get(key)
    if not isinstance(raw, str) or not raw:  # the API server only sends strings
        return frozenset()
    return frozenset(part.strip() for part in raw.split(",") if part.strip())
