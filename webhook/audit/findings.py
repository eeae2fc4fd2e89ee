"""What an audit finds in one stored pod: pure functions over the pod as the API server returns it.

Which pods are audited (:func:`skip_reason`): those the shipped MutatingWebhookConfiguration sends to
the webhook and that still matter. Not audited:

* pods whose phase is neither Pending nor Running, and pods being deleted (``deletionTimestamp``);
* pods labelled ``eks.amazonaws.com/skip-pod-identity-webhook`` (any value: the configuration's
  objectSelector is ``DoesNotExist``), and pods of namespaces labelled so (its namespaceSelector);
* the webhook's own pods (label ``app.kubernetes.io/name: irsa-webhook``, wherever they run);
* pods of the webhook's own namespace (``--namespace``, when given), which the configuration never
  sends to the webhook, and of the namespaces excluded by ``--exclude-namespace``.

What is wrong with an audited pod (:func:`problems`), given the identity the webhook would use for
it now:

* **missing credentials**: mutating the stored pod now (:func:`webhook.core.mutate.mutate`) would add the
  token volume, or would add a credential variable to some container: ``AWS_ROLE_ARN`` /
  ``AWS_WEB_IDENTITY_TOKEN_FILE``, for EKS Pod Identity ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` /
  ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``. Any other addition (a region, regional STS, a session
  name, the Pod Identity label, a mount alone) does not count: such a pod has credentials.
* **role drift**: a container the webhook injected whose ``AWS_ROLE_ARN`` is not the role the
  identity names now, including none (the ServiceAccount lost its role-arn, or no longer exists). A
  container counts as injected when it mounts the token volume and its ``AWS_WEB_IDENTITY_TOKEN_FILE``
  is the webhook's token file, and ``skip-containers`` does not name it: a role a manifest sets on
  its own is what the webhook leaves alone, and so does the audit (evicting such a pod would only
  bring it back with the same role).

Nothing here raises for any JSON value: an object of an unexpected shape is skipped as malformed or
has no problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from webhook.core.inject import CONTAINER_FIELDS
from webhook.core.mutate import CONTAINER_CREDENTIAL_VARS, CREDENTIAL_VARS, mutate
from webhook.core.outcomes import MUTATED
from webhook.core.pod import PodView, read_pod
from webhook.core.records import CONTAINER_CREDENTIALS, Identity
from webhook.core.settings import VOLUME_NAME, Settings

# The shipped webhook configuration's selectors (manifests/base/mutating_webhook.yaml).
SKIP_LABEL = "eks.amazonaws.com/skip-pod-identity-webhook"
NAME_LABEL = "app.kubernetes.io/name"
WEBHOOK_NAME = "irsa-webhook"
AUDITED_PHASES = frozenset({"Pending", "Running"})

# Why a listed pod is not audited; the summary counts each.
SKIP_FINISHED = "finished"  # phase Succeeded, Failed or Unknown
SKIP_TERMINATING = "terminating"
SKIP_LABELLED = "skip-label"
SKIP_WEBHOOK_POD = "webhook-pod"
SKIP_WEBHOOK_NAMESPACE = "webhook-namespace"
SKIP_NAMESPACE_LABELLED = "namespace-skip-label"
SKIP_EXCLUDED = "excluded-namespace"
SKIP_MALFORMED = "malformed"
SKIP_REASONS = (
    SKIP_FINISHED,
    SKIP_TERMINATING,
    SKIP_LABELLED,
    SKIP_WEBHOOK_POD,
    SKIP_WEBHOOK_NAMESPACE,
    SKIP_NAMESPACE_LABELLED,
    SKIP_EXCLUDED,
    SKIP_MALFORMED,
)

# The two problems.
MISSING = "missing-credentials"
DRIFT = "role-drift"
# Why the role drifted: the ServiceAccount names another role, names none, or is gone.
DRIFT_CHANGED = "changed"
DRIFT_NO_ROLE = "no-role"
DRIFT_NOT_FOUND = "serviceaccount-not-found"

TOKEN_FILE_VAR = CREDENTIAL_VARS[1]
ROLE_VAR = CREDENTIAL_VARS[0]


@dataclass(frozen=True, slots=True)
class Scope:
    """Which namespaces are left out, besides what the pods' own labels say."""

    webhook_namespace: str = ""  # --namespace: the shipped configuration never calls the webhook there
    excluded_namespaces: frozenset[str] = frozenset()  # --exclude-namespace
    opted_out_namespaces: frozenset[str] = frozenset()  # namespaces carrying SKIP_LABEL


@dataclass(frozen=True, slots=True)
class MissingCredentials:
    """The pod lacks what the webhook would inject now."""

    mode: str  # the identity's: STS_WEB_IDENTITY or CONTAINER_CREDENTIALS
    source: str  # the identity source that names the role: serviceaccount, configmap, pod-identity
    role_arn: str  # the role the pod should get ("" for EKS Pod Identity: the association names it)
    token_volume: str  # the token volume the pod lacks, "" when it has it
    containers: tuple[str, ...]  # containers that lack the credential variables
    variables: tuple[str, str]  # the credential pair of the mode

    kind = MISSING


@dataclass(frozen=True, slots=True)
class RoleDrift:
    """Injected containers whose role is no longer the identity's."""

    containers: tuple[tuple[str, str], ...]  # (container, its AWS_ROLE_ARN)
    current: str  # the role ARN the identity names now ("" none)
    reason: str  # DRIFT_CHANGED, DRIFT_NO_ROLE or DRIFT_NOT_FOUND

    kind = DRIFT


Problem = MissingCredentials | RoleDrift


@dataclass(frozen=True, slots=True)
class Owner:
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class Eviction:
    """What ``--evict`` did with one pod: ``result`` is one of ``EVICTION_RESULTS``."""

    result: str
    message: str = ""


EVICTED = "evicted"
EVICTED_DRY_RUN = "dry-run"  # the API server accepted a dry-run eviction
NO_CONTROLLER = "no-controller"  # a bare pod: nothing would recreate it, so it is never evicted
# A controller that does not recreate an evicted pod as it was: a Job counts an API-initiated eviction
# against its backoffLimit (and fails at once at 0), Argo Workflows and Tekton do not recreate at all.
NOT_RECREATED = "owner-does-not-recreate"
LIMITED = "eviction-limit"  # --max-evictions requests were made already in this run
BLOCKED = "disruption-budget"  # 429: a PodDisruptionBudget allows no disruption now
GONE = "gone"  # 404: deleted since it was read
CHANGED = "changed"  # 409: a new pod of that name (the UID precondition failed)
FAILED = "failed"  # any other answer: an error (exit 2)
EVICTION_RESULTS = (EVICTED, EVICTED_DRY_RUN, NO_CONTROLLER, NOT_RECREATED, LIMITED, BLOCKED, GONE, CHANGED, FAILED)
# At most this many Eviction requests per run unless --max-evictions says otherwise: enough for the
# pods an hourly audit finds on a healthy cluster, too few for one wrong flag to drain it.
DEFAULT_MAX_EVICTIONS = 10
# The owners known to recreate an evicted pod as it was, so that it comes back through the webhook;
# --evict-owner-kind adds others (a custom controller that keeps a replica count).
RECREATING_KINDS = frozenset({"ReplicaSet", "StatefulSet", "DaemonSet"})


@dataclass(frozen=True, slots=True)
class Finding:
    namespace: str
    pod: str
    uid: str
    service_account: str
    phase: str
    owner: Owner | None  # the controller (ownerReferences entry with controller: true)
    problems: tuple[Problem, ...]
    eviction: Eviction | None = None


Lookup = Callable[[str, str], "Identity | None"]
"""``lookup(namespace, service_account)``: the identity the webhook would use now (None: none)."""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def phase_of(pod: Mapping[str, Any]) -> str:
    # The API server sets Pending when it stores a pod; only a hand-written one has no phase.
    return _text(_dict(pod.get("status")).get("phase")) or "Pending"


def skip_reason(pod: Any, scope: Scope) -> str | None:  # noqa: PLR0911 - one return per reason
    """Why ``pod`` is not audited (one of ``SKIP_REASONS``), or None when it is."""
    if not isinstance(pod, dict):
        return SKIP_MALFORMED
    meta = _dict(pod.get("metadata"))
    namespace, name = meta.get("namespace"), meta.get("name")
    if not isinstance(namespace, str) or not namespace or not isinstance(name, str) or not name:
        return SKIP_MALFORMED
    if phase_of(pod) not in AUDITED_PHASES:
        return SKIP_FINISHED
    if meta.get("deletionTimestamp"):
        return SKIP_TERMINATING
    labels = _dict(meta.get("labels"))
    if SKIP_LABEL in labels:
        return SKIP_LABELLED
    if labels.get(NAME_LABEL) == WEBHOOK_NAME:
        return SKIP_WEBHOOK_POD
    if scope.webhook_namespace and namespace == scope.webhook_namespace:
        return SKIP_WEBHOOK_NAMESPACE
    if namespace in scope.opted_out_namespaces:
        return SKIP_NAMESPACE_LABELLED
    if namespace in scope.excluded_namespaces:
        return SKIP_EXCLUDED
    return None


def _names(items: Any) -> set[str]:
    if not isinstance(items, list):
        return set()
    return {name for item in items if isinstance(item, dict) and isinstance(name := item.get("name"), str)}


def _env_values(env: Any) -> dict[str, str]:
    """Literal env values by name (the last entry wins, as in the kubelet); ``valueFrom`` ones left out."""
    values: dict[str, str] = {}
    if not isinstance(env, list):
        return values
    for entry in env:
        if not isinstance(entry, dict) or not isinstance(name := entry.get("name"), str):
            continue
        value = entry.get("value")
        if isinstance(value, str):
            values[name] = value
        elif value is None and entry.get("valueFrom") is None:
            values[name] = ""
        else:
            values.pop(name, None)
    return values


def _containers(spec: Mapping[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    """(field, index, container) of every init and regular container, in the mutation's order."""
    found = []
    for field_name in CONTAINER_FIELDS:
        items = spec.get(field_name)
        if isinstance(items, list):
            found += [(field_name, i, c) for i, c in enumerate(items) if isinstance(c, dict)]
    return found


def _shown_name(container: Mapping[str, Any], index: int) -> str:
    name = container.get("name")
    return name if isinstance(name, str) else f"#{index}"


def _no_jitter(low: int, high: int) -> int:
    return high  # the lifetime of a token to add does not matter here: only whether one is added


def missing_credentials(view: PodView, identity: Identity | None, settings: Settings) -> MissingCredentials | None:
    """What mutating the pod now would add of the token volume and the credential variables, if any:
    what :func:`~webhook.core.mutate.mutate` says it added."""
    if identity is None:
        return None
    result = mutate(view, identity, settings, _no_jitter)
    if result.decision != MUTATED:
        return None
    pod_identity = identity.mode == CONTAINER_CREDENTIALS
    variables = CONTAINER_CREDENTIAL_VARS if pod_identity else CREDENTIAL_VARS
    lacking = [added.container for added in result.injected if not set(variables).isdisjoint(added.variables)]
    if not result.volume and not lacking:
        return None
    return MissingCredentials(
        mode=identity.mode,
        source=identity.source,
        role_arn="" if pod_identity else identity.role_arn,
        token_volume=result.volume,
        containers=tuple(lacking),
        variables=variables,
    )


def role_drift(view: PodView, identity: Identity | None, settings: Settings) -> RoleDrift | None:
    """Injected containers whose AWS_ROLE_ARN differs from the identity's role now, if any."""
    if identity is not None and identity.mode == CONTAINER_CREDENTIALS:
        # The Pod Identity association names the role, and it is not visible here; an IRSA pod that
        # should now have Pod Identity lacks its variables, which missing_credentials reports.
        return None
    current = identity.role_arn if identity is not None else ""
    token_files = {settings.token_file, settings.windows_token_file}
    drifted = []
    for _field, index, container in _containers(_dict(view.pod.get("spec"))):
        name = container.get("name")
        if isinstance(name, str) and name in view.skip:
            continue
        env = _env_values(container.get("env"))
        if env.get(TOKEN_FILE_VAR) not in token_files or VOLUME_NAME not in _names(container.get("volumeMounts")):
            continue  # not injected by the webhook: a role the manifest set is the manifest's business
        role = env.get(ROLE_VAR)
        if role is not None and role != current:
            drifted.append((_shown_name(container, index), role))
    if not drifted:
        return None
    if current:
        return RoleDrift(tuple(drifted), current, DRIFT_CHANGED)
    reason = DRIFT_NOT_FOUND if identity is None else DRIFT_NO_ROLE
    return RoleDrift(tuple(drifted), current, reason)


def problems(view: PodView, identity: Identity | None, settings: Settings) -> tuple[Problem, ...]:
    """Every problem of an audited pod, given the identity the webhook would use for it now."""
    found: list[Problem] = []
    missing = missing_credentials(view, identity, settings)
    if missing is not None:
        found.append(missing)
    drift = role_drift(view, identity, settings)
    if drift is not None:
        found.append(drift)
    return tuple(found)


def controller_of(pod: Mapping[str, Any]) -> Owner | None:
    """The owner reference marked ``controller: true`` (the object that recreates the pod), if any."""
    references = _dict(pod.get("metadata")).get("ownerReferences")
    if not isinstance(references, list):
        return None
    for reference in references:
        if isinstance(reference, dict) and reference.get("controller") is True:
            return Owner(_text(reference.get("kind")), _text(reference.get("name")))
    return None


def examine(pod: dict[str, Any], lookup: Lookup, settings: Settings) -> Finding | None:
    """The finding for an audited pod (``skip_reason`` said None), or None when nothing is wrong.

    ``lookup`` gives the identity for the pod's namespace and ServiceAccount, resolved as admission
    resolves it (``serviceAccountName``, else the deprecated ``serviceAccount``, else ``default``).
    """
    view = read_pod(pod, settings)
    if isinstance(view, str):  # a field of the wrong type: no admission would have read it either
        return None
    found = problems(view, lookup(view.namespace, view.service_account), settings)
    if not found:
        return None
    return Finding(
        namespace=view.namespace,
        pod=view.name,
        uid=_text(_dict(pod.get("metadata")).get("uid")),
        service_account=view.service_account,
        phase=phase_of(pod),
        owner=controller_of(pod),
        problems=found,
    )
