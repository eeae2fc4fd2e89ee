"""From a pod (read once) and its ServiceAccount's identity to an admission decision (pure).

Shared by the HTTPS handler and the offline ``mutate`` command so both answer the same way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from webhook.core.inject import Mutation
from webhook.core.mutate import Jitter, mutate
from webhook.core.outcomes import DENIED_STRICT, SA_NOT_FOUND
from webhook.core.pod import PodView
from webhook.core.records import CONTAINER_CREDENTIALS, STS_WEB_IDENTITY, AdmissionWarning, Identity, PatchOp, Pod
from webhook.core.settings import Settings

# Warnings that are problems of the ServiceAccount's or pod's configuration: with --strict they deny
# the pod. A ServiceAccount we could not find is not one of them: it may be our lookup that failed,
# and kube-apiserver's own ServiceAccount admission already refuses pods whose account is missing.
CONFIG_PROBLEMS = frozenset(
    {
        "invalid-role-arn",
        "role-arn-too-long",
        "invalid-sts-regional-endpoints",
        "invalid-token-expiration",
        "token-expiration-too-low",
        "token-expiration-too-high",
        "volume-conflict",
        "mount-path-conflict",
        "invalid-audience",
        "audience-too-long",
        "invalid-region",
        "region-too-long",
        "invalid-role-session-name",
        "role-session-name-too-long",
    }
)
# Not a problem, even with --strict: ``skip-containers`` naming a container the pod does not have
# yet (``unknown-skip-container``). Webhooks run in name order, so a sidecar such as istio-proxy is
# often added after us; the annotation is right, and reinvocation applies it to the sidecar.


@dataclass(slots=True)
class Decision:
    allowed: bool
    decision: str
    pod: Pod
    patch: list[PatchOp] = field(default_factory=list)
    warnings: list[AdmissionWarning] = field(default_factory=list)
    role_arn: str = ""
    message: str | None = None
    mode: str = STS_WEB_IDENTITY
    """The identity's credential mode (``STS_WEB_IDENTITY`` or ``CONTAINER_CREDENTIALS``): labels metrics."""


def decide(view: PodView, identity: Identity | None, settings: Settings, jitter: Jitter = random.randint) -> Decision:
    """``identity`` None means the ServiceAccount does not exist (after every lookup was tried).

    ``jitter`` is the Pod Identity token lifetime's random source (see ``webhook.core.mutate``)."""
    if identity is None:
        warning = AdmissionWarning.make(
            SA_NOT_FOUND,
            f"serviceaccount {view.namespace}/{view.service_account} not found; no AWS credentials injected",
        )
        return Decision(True, SA_NOT_FOUND, view.pod, warnings=[warning])

    result: Mutation = mutate(view, identity, settings, jitter)
    decision = Decision(
        allowed=True,
        decision=result.decision,
        pod=result.pod,
        patch=result.patch,
        warnings=result.warnings,
        # A Pod Identity pod assumes the association's role, never the ServiceAccount's annotation.
        role_arn="" if identity.mode == CONTAINER_CREDENTIALS else identity.role_arn,
        mode=identity.mode,
    )
    if settings.strict:
        problems = [w.message for w in result.warnings if w.kind in CONFIG_PROBLEMS]
        if problems:
            decision.allowed = False
            decision.decision = DENIED_STRICT
            decision.pod = view.pod
            decision.patch = []
            decision.message = "irsa-webhook --strict: " + "; ".join(problems)
    return decision
