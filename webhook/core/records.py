"""Small immutable records shared by the mutation core, the cache and the admission layer.

The pod itself is never typed: it stays the raw ``dict`` decoded from the request, so fields this
code does not know survive untouched (the client's model classes would drop them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webhook.core.settings import DEFAULT_AUDIENCE

JSON = Any
"""A decoded JSON value. Pods and patches stay raw dicts and lists on purpose."""

Pod = dict[str, Any]
PatchOp = dict[str, Any]

# Kubernetes prints each admission warning on one line; keep it under 120 characters.
MAX_WARNING_CHARS = 119


@dataclass(frozen=True, slots=True)
class AdmissionWarning:
    """One problem worth telling the user about, returned in the AdmissionResponse ``warnings``.

    ``kind`` is a stable machine name (it labels the ``warnings_total`` metric); ``message`` is what
    kubectl prints.
    """

    kind: str
    message: str

    @classmethod
    def make(cls, kind: str, message: str) -> AdmissionWarning:
        if len(message) > MAX_WARNING_CHARS:
            message = message[: MAX_WARNING_CHARS - 3] + "..."
        return cls(kind, message)


# How a mutated pod gets credentials: the values label upstream's pod_count metric, kept as they are.
STS_WEB_IDENTITY = "sts_web_identity"  # IRSA: a web identity token and a role ARN
CONTAINER_CREDENTIALS = "container_credentials"  # EKS Pod Identity: a token for the node's agent


@dataclass(frozen=True, slots=True)
class Identity:
    """What a ServiceAccount's prefixed annotations mean, parsed once when the object is seen.

    ``role_arn`` empty means the ServiceAccount exists but asks for no IRSA mutation. ``warnings``
    are the problems found while parsing; they are returned with every pod that uses the account.
    ``resource_version`` is the object's version this was parsed from (empty when unknown, e.g. from
    manifests): the cache uses it to keep a late live GET from overwriting what the watch delivered.
    It is bookkeeping, not meaning, so it takes no part in equality.
    """

    namespace: str
    name: str
    role_arn: str = ""
    audience: str = DEFAULT_AUDIENCE
    sts_regional_endpoints: bool = False
    token_expiration: int = 86400
    warnings: tuple[AdmissionWarning, ...] = ()
    resource_version: str = field(default="", compare=False)
    mode: str = STS_WEB_IDENTITY
    """``STS_WEB_IDENTITY`` (IRSA) or ``CONTAINER_CREDENTIALS`` (EKS Pod Identity)."""
    source: str = "serviceaccount"
    """Which identity source answered (``serviceaccount``, ``pod-identity``, ``configmap``): logged."""
    region: str | None = None
    """The ServiceAccount's ``region`` annotation; None: ``--aws-default-region`` decides."""
    role_session_name: bool | None = None
    """The ServiceAccount's ``role-session-name: pod``; None: ``--role-session-name`` decides."""
