"""What an audit finds in one stored pod: pure functions over the pod as the API server returns it.

Which pods are audited (:func:`skip_reason`): those kube-apiserver sends to the webhook, by the
selectors of the MutatingWebhookConfiguration as the cluster holds it (:mod:`webhook.audit.selection`),
and that still matter. Not audited: pods whose phase is neither Pending nor Running, pods being
deleted (``deletionTimestamp``), pods the configuration does not send to the webhook (its namespace
and object selectors: the skip label, the webhook's own namespace and pods, opt-in namespaces,
kube-system under the fail-closed component, ...), and the namespaces of ``--exclude-namespace``.

What is wrong with an audited pod (:func:`problems`), given the identity the webhook would use for
it now:

* **missing credentials**: mutating the stored pod now (:func:`webhook.core.mutate.mutate`) would add the
  token volume, or would add a credential variable to some container: ``AWS_ROLE_ARN`` /
  ``AWS_WEB_IDENTITY_TOKEN_FILE``, for EKS Pod Identity ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` /
  ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``. Any other addition (a region, regional STS, a session
  name, the Pod Identity label, a mount alone) does not count: such a pod has credentials.
* **role drift**: a container the webhook injected whose ``AWS_ROLE_ARN`` is not the role the
  identity names now, including none (the ServiceAccount lost its role-arn, or no longer exists).
  What the webhook injected is what its admission marker (:mod:`webhook.core.marker`) names: a role
  a manifest sets on its own is what the webhook leaves alone, and so does the audit. A pod admitted
  before the marker existed is judged by the old rule (it mounts the token volume and its
  ``AWS_WEB_IDENTITY_TOKEN_FILE`` is the webhook's token file) and reported, never evicted.

Whether an eviction would help (:func:`replacement_verdict`): the replacement is the pod as its
controller would create it again (the stored pod without the credential pair the marker says the
webhook wrote) admitted now. A pod is evictable only when that replacement can be created (its
ServiceAccount exists, ``--strict`` admits it) and comes back with other credentials than the pod
has: otherwise an eviction only loops.

Nothing here raises for any JSON value: an object of an unexpected shape is skipped as malformed or
has no problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.audit.selection import CALLED, MAYBE, NOT_CALLED, Selection, namespace_labels
from webhook.core.decide import decide
from webhook.core.inject import CONTAINER_FIELDS
from webhook.core.marker import Marker, read_marker
from webhook.core.mutate import CONTAINER_CREDENTIAL_VARS, CREDENTIAL_VARS, mutate
from webhook.core.outcomes import MUTATED
from webhook.core.pod import PodView, read_pod
from webhook.core.records import CONTAINER_CREDENTIALS, Identity
from webhook.core.settings import VOLUME_NAME, Settings

AUDITED_PHASES = frozenset({"Pending", "Running"})

# Why a listed pod is not audited; the summary counts each.
SKIP_FINISHED = "finished"  # phase Succeeded, Failed or Unknown
SKIP_TERMINATING = "terminating"
SKIP_NOT_CALLED = NOT_CALLED  # the webhook configuration's selectors never send it to the webhook
SKIP_EXCLUDED = "excluded-namespace"
SKIP_MALFORMED = "malformed"
SKIP_REASONS = (SKIP_FINISHED, SKIP_TERMINATING, SKIP_NOT_CALLED, SKIP_EXCLUDED, SKIP_MALFORMED)

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
    """Which pods the webhook is called for, and which namespaces the operator left out."""

    selection: Selection | None = None  # the configuration's selectors (None: every pod, in unit tests)
    namespace_labels: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> labels
    excluded_namespaces: frozenset[str] = frozenset()  # --exclude-namespace

    def calls(self, pod: Mapping[str, Any], namespace: str) -> str:
        """CALLED, NOT_CALLED or MAYBE (see :mod:`webhook.audit.selection`)."""
        if self.selection is None:
            return CALLED
        labels = _dict(_dict(pod.get("metadata")).get("labels"))
        return self.selection.calls(namespace_labels(namespace, self.namespace_labels), labels)


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
    marked: bool = True  # False: no admission marker, found by the token-file rule (never evicted)

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
# Why a replacement would not help (replacement_verdict); never evicted, whatever the owner.
NO_SERVICE_ACCOUNT = "serviceaccount-not-found"  # the ServiceAccount admission plugin refuses the replacement
DENIED = "replacement-denied"  # --strict: the webhook would deny the replacement
UNCHANGED = "replacement-unchanged"  # the replacement would come back with the same credentials
CONDITIONAL = MAYBE  # the webhook's matchConditions (CEL) decide whether it is even called
VERDICTS = (NO_SERVICE_ACCOUNT, DENIED, UNCHANGED, CONDITIONAL)
EVICTION_RESULTS = (
    EVICTED,
    EVICTED_DRY_RUN,
    NO_CONTROLLER,
    NOT_RECREATED,
    *VERDICTS,
    LIMITED,
    BLOCKED,
    GONE,
    CHANGED,
    FAILED,
)
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
    verdict: Eviction | None = None  # why an eviction would not help (one of VERDICTS); None: it would


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
    if namespace in scope.excluded_namespaces:
        return SKIP_EXCLUDED
    if scope.calls(pod, namespace) == NOT_CALLED:
        return SKIP_NOT_CALLED
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
    marker = read_marker(view.pod)
    drifted = []
    for _field, index, container in _containers(_dict(view.pod.get("spec"))):
        if not _injected(container, index, marker, view, settings):
            continue  # a role the manifest set is the manifest's business
        role = _env_values(container.get("env")).get(ROLE_VAR)
        if role is not None and role != current:
            drifted.append((_shown_name(container, index), role))
    if not drifted:
        return None
    marked = marker is not None
    if current:
        return RoleDrift(tuple(drifted), current, DRIFT_CHANGED, marked)
    reason = DRIFT_NOT_FOUND if identity is None else DRIFT_NO_ROLE
    return RoleDrift(tuple(drifted), current, reason, marked)


def _injected(
    container: Mapping[str, Any], index: int, marker: Marker | None, view: PodView, settings: Settings
) -> bool:
    """Whether the webhook gave this container its credential pair: its marker says so; for a pod
    admitted before markers existed, it mounts the token volume and points at the webhook's file."""
    if marker is not None:
        return _shown_name(container, index) in marker.containers
    name = container.get("name")
    if isinstance(name, str) and name in view.skip:
        return False
    env = _env_values(container.get("env"))
    token_files = {settings.token_file, settings.windows_token_file}
    return env.get(TOKEN_FILE_VAR) in token_files and VOLUME_NAME in _names(container.get("volumeMounts"))


_PAIRS = (*CREDENTIAL_VARS, *CONTAINER_CREDENTIAL_VARS)


def _credentials(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """What decides which AWS credentials a pod gets: its token volumes, and per container the
    credential variables and token mounts."""
    spec = _dict(pod.get("spec"))
    volumes = tuple(sorted(_names(spec.get("volumes"))))
    per_container = []
    for field_name, index, container in _containers(spec):
        env = _env_values(container.get("env"))
        mounts = _names(container.get("volumeMounts"))
        per_container.append(
            (field_name, _shown_name(container, index), tuple(env.get(var) for var in _PAIRS), tuple(sorted(mounts)))
        )
    return volumes, tuple(per_container)


def _as_created(pod: dict[str, Any], marker: Marker | None) -> dict[str, Any]:
    """The pod as its controller would create it again: without the credential pair the webhook wrote
    into the containers its marker names (everything else, the manifest's own variables included, is
    the pod's template)."""
    if marker is None or not marker.containers:
        return pod
    spec = dict(_dict(pod.get("spec")))
    for field_name in CONTAINER_FIELDS:
        items = spec.get(field_name)
        if not isinstance(items, list):
            continue
        new_items: list[Any] = []
        for index, item in enumerate(items):
            env = item.get("env") if isinstance(item, dict) else None
            if isinstance(env, list) and _shown_name(item, index) in marker.containers:
                kept = [e for e in env if not (isinstance(e, dict) and e.get("name") in _PAIRS)]
                item = {**item, "env": kept}  # noqa: PLW2901 - the copy replaces the stored container
            new_items.append(item)
        spec[field_name] = new_items
    return {**pod, "spec": spec}


def replacement_verdict(  # noqa: PLR0911 - one return per reason
    view: PodView, identity: Identity | None, settings: Settings, called: str
) -> Eviction | None:
    """Why evicting this pod would not help (an :class:`Eviction` with one of ``VERDICTS``), or None
    when its replacement would be created and come back with other credentials."""
    if called == MAYBE:
        return Eviction(CONDITIONAL, "the webhook configuration's matchConditions decide whether it is called")
    if identity is None:
        return Eviction(NO_SERVICE_ACCOUNT, "the ServiceAccount admission plugin would refuse the replacement")
    pod = view.pod
    replacement = read_pod(_as_created(pod, read_marker(pod)), settings)
    if isinstance(replacement, str):
        return Eviction(UNCHANGED, replacement)
    decision = decide(replacement, identity, settings, _no_jitter)
    if not decision.allowed:
        return Eviction(DENIED, decision.message or "denied")
    if _credentials(decision.pod) == _credentials(pod):
        if read_marker(pod) is None:
            return Eviction(UNCHANGED, "no admission marker: the role may be the manifest's own")
        return Eviction(UNCHANGED, "it would come back with the same credentials")
    return None


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


def examine(pod: dict[str, Any], lookup: Lookup, settings: Settings, called: str = CALLED) -> Finding | None:
    """The finding for an audited pod (``skip_reason`` said None), or None when nothing is wrong.

    ``lookup`` gives the identity for the pod's namespace and ServiceAccount, resolved as admission
    resolves it (``serviceAccountName``, else the deprecated ``serviceAccount``, else ``default``).
    ``called`` is what the webhook configuration says of the pod (:meth:`Scope.calls`).
    """
    view = read_pod(pod, settings)
    if isinstance(view, str):  # a field of the wrong type: no admission would have read it either
        return None
    identity = lookup(view.namespace, view.service_account)
    found = problems(view, identity, settings)
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
        verdict=replacement_verdict(view, identity, settings, called),
    )
