"""Annotations → meaning: ServiceAccount identities and the per-pod overrides.

Precedence, literally: a pod's ``token-expiration`` annotation beats its ServiceAccount's, which
beats ``--token-expiration``; the ServiceAccount's ``audience`` and ``sts-regional-endpoints`` beat
``--token-audience`` and ``--sts-regional-endpoint``. A bad value never denies a pod (unless
``--strict``): it falls back to the next source and produces a warning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from webhook.settings import MAX_TOKEN_EXPIRATION, MIN_TOKEN_EXPIRATION, Settings
from webhook.types import AdmissionWarning, Identity

# arn:<partition>:iam::<12-digit account>:role/<optional path/><name>; IAM's allowed characters.
ROLE_ARN_RE = re.compile(r"arn:[a-z][a-z0-9-]*:iam::\d{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}")
# Go's strconv.ParseInt (base 10) accepts an optional sign and digits, nothing else.
INT_RE = re.compile(r"[+-]?\d+")
# Go's strconv.ParseBool spellings: upstream parses sts-regional-endpoints with it.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(value: str) -> bool | None:
    """``strconv.ParseBool``: True/False for its spellings, None for anything else."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def _annotations(meta: Any) -> Mapping[str, Any]:
    # dict, not Mapping: objects come from JSON/YAML, and an ABC isinstance check is 5x slower.
    if isinstance(meta, dict):
        ann = meta.get("annotations")
        if isinstance(ann, dict):
            return ann
    return {}


def parse_expiration(raw: str, fallback: int, where: str) -> tuple[int, AdmissionWarning | None]:
    """Token lifetime from an annotation value; bounds follow kube-apiserver's validation."""
    if not INT_RE.fullmatch(raw):
        return fallback, AdmissionWarning.make(
            "invalid-token-expiration",
            f"{where} token-expiration {raw!r} is not an integer; using {fallback}",
        )
    seconds = int(raw)
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


def parse_service_account(obj: Mapping[str, Any], settings: Settings) -> Identity:
    """Parse a raw ServiceAccount object (as listed/watched) into an :class:`Identity`.

    Called once per watch event; only the result is kept, never the object.
    """
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    namespace = str(meta.get("namespace") or "") if isinstance(meta, Mapping) else ""
    name = str(meta.get("name") or "") if isinstance(meta, Mapping) else ""
    return identity_from_annotations(namespace, name, _annotations(meta), settings)


def identity_from_annotations(
    namespace: str, name: str, annotations: Mapping[str, Any], settings: Settings
) -> Identity:
    warnings: list[AdmissionWarning] = []
    where = f"serviceaccount {namespace}/{name}"

    role_arn = str(annotations.get(settings.annotation("role-arn")) or "")
    if role_arn and not ROLE_ARN_RE.fullmatch(role_arn):
        # Still injected, as upstream does: an unusual partition must not break existing pods.
        warnings.append(
            AdmissionWarning.make("invalid-role-arn", f"{where} role-arn {role_arn!r} is not an IAM role ARN")
        )

    audience_value = annotations.get(settings.annotation("audience"))
    audience = settings.token_audience if audience_value is None else str(audience_value)

    sts = settings.sts_regional_endpoint
    sts_raw = annotations.get(settings.annotation("sts-regional-endpoints"))
    if sts_raw is not None:
        parsed = parse_go_bool(str(sts_raw))
        if parsed is None:
            warnings.append(
                AdmissionWarning.make(
                    "invalid-sts-regional-endpoints",
                    f"{where} sts-regional-endpoints {str(sts_raw)!r} is not a boolean; using {str(sts).lower()}",
                )
            )
        else:
            sts = parsed

    expiration = settings.token_expiration
    exp_raw = annotations.get(settings.annotation("token-expiration"))
    if exp_raw is not None:
        expiration, warning = parse_expiration(str(exp_raw), settings.token_expiration, where)
        if warning:
            warnings.append(warning)

    return Identity(
        namespace=namespace,
        name=name,
        role_arn=role_arn,
        audience=audience,
        sts_regional_endpoints=sts,
        token_expiration=expiration,
        warnings=tuple(warnings),
    )


def pod_annotations(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return _annotations(pod.get("metadata"))


def skip_containers(annotations: Mapping[str, Any], settings: Settings) -> frozenset[str]:
    """Names from ``skip-containers``, trimmed of spaces [ours]; empty items ignored."""
    raw = annotations.get(settings.annotation("skip-containers"))
    if not raw:
        return frozenset()
    return frozenset(part.strip() for part in str(raw).split(",") if part.strip())
