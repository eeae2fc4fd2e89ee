"""The pure mutation: (the pod read once, identity, settings) → (mutated pod, JSON Patch, warnings, and
what was added).

Two credential modes share one injection: IRSA (``AWS_ROLE_ARN`` and a web identity token) and EKS
Pod Identity (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and a token for the node's agent, plus the
``eks.amazonaws.com/pod-identity`` label). The same containers are chosen, skipped and left alone in
both (:mod:`webhook.core.inject`); only the names and values differ.

No I/O happens here, and the one random choice (the Pod Identity token lifetime jitter) comes from a
``jitter`` argument, so tests fix it. The input pod is never modified: the result shares every
untouched subtree with it and copies only the dicts and lists it appends to (copy-on-write), which
keeps the hot path cheap and guarantees that unknown fields survive as they were.

The patch is built alongside the copy and holds only ``add`` operations for what is new: a volume,
env entries, mounts, the label. Its values are the very objects appended to the copy, and the copy
shares every untouched subtree with the input: callers treat all three as read-only (the server
encodes the patch at once, the CLI prints one of them). It never replaces an array, so nothing another
writer put in a container can be lost (upstream's whole-array replacement dropped fields in #84, #208 and kops#16802).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from webhook.core.annotations import ROLE_ARN_TOO_LONG, parse_expiration, scalar_text
from webhook.core.inject import Injection, Mutation, append, inject_containers, names
from webhook.core.marker import mark
from webhook.core.outcomes import ALREADY_MUTATED, MALFORMED, MUTATED, NO_ROLE, VOLUME_CONFLICT
from webhook.core.pod import PodView
from webhook.core.records import CONTAINER_CREDENTIALS, AdmissionWarning, Identity, PatchOp, Pod
from webhook.core.settings import TOKEN_FILE_NAME, VOLUME_NAME, Settings

CREDENTIAL_VARS = ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
CONTAINER_CREDENTIAL_VARS = ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
REGION_VARS = ("AWS_DEFAULT_REGION", "AWS_REGION")
# STS's limit on RoleSessionName: AssumeRoleWithWebIdentity fails outright with a longer one.
MAX_SESSION_NAME = 64
# kube-apiserver cuts generateName to 58 characters before appending its 5 random ones.
_GENERATE_NAME_BASE, _GENERATE_NAME_SUFFIX = 58, 5
# EKS Pod Identity pods carry this label; its key ignores --annotation-prefix, as upstream's does.
POD_IDENTITY_LABEL = "eks.amazonaws.com/pod-identity"
POD_IDENTITY_LABEL_VALUE = "enabled"
_POD_IDENTITY_LABEL_POINTER = "/metadata/labels/" + POD_IDENTITY_LABEL.replace("~", "~0").replace("/", "~1")
# Upstream's jitter: a Pod Identity token lifetime of exactly 24 h becomes a uniformly random one in
# [22 h, 24 h], so that the tokens of pods started together do not all refresh at once. IRSA never jitters.
JITTERED_EXPIRATION = 86400
JITTER_MIN = 79200
Jitter = Callable[[int, int], int]
"""``jitter(low, high)``: an integer in [low, high], both included (``random.randint``)."""
# Warnings about ServiceAccount annotations that Pod Identity does not use (the role comes from the
# Pod Identity association, the audience from --container-credentials-audience): not returned for
# such pods, so they neither mislead nor deny the pod under --strict.
_IRSA_ONLY_WARNINGS = frozenset(
    {"invalid-role-arn", ROLE_ARN_TOO_LONG, "invalid-audience", "audience-too-long", "invalid-role-session-name"}
)


def _is_token_volume(volume: Mapping[str, Any]) -> bool:
    projected = volume.get("projected")
    if not isinstance(projected, dict):
        return False
    sources = projected.get("sources")
    return isinstance(sources, list) and any(
        isinstance(s, dict) and isinstance(s.get("serviceAccountToken"), dict) for s in sources
    )


def _token_volume(name: str, audience: str, expiration: int, path: str) -> dict[str, Any]:
    """A projected serviceAccountToken volume, for either mode."""
    token: dict[str, Any] = {}
    if audience:  # an empty audience means the API server's own (omitted, as upstream does)
        token["audience"] = audience
    token["expirationSeconds"] = expiration
    token["path"] = path
    return {"name": name, "projected": {"sources": [{"serviceAccountToken": token}]}}


def _region(identity: Identity, settings: Settings) -> str:
    """The account's ``region`` annotation, else --aws-default-region (either may be empty)."""
    return settings.aws_default_region if identity.region is None else identity.region


def resolve_expiration(view: PodView, identity: Identity) -> tuple[int, AdmissionWarning | None]:
    """The pod's ``token-expiration`` annotation overrides the ServiceAccount's (same rules)."""
    raw = view.expiration
    if raw is None:
        return identity.token_expiration, None
    text = scalar_text(raw)
    return parse_expiration(raw if text is None else text, identity.token_expiration, "pod")


def mutate(view: PodView, identity: Identity | None, settings: Settings, jitter: Jitter = random.randint) -> Mutation:
    """Inject ``identity``'s credentials into the pod; the README's "What is injected" states every rule.

    ``jitter`` picks the lifetime of a jittered Pod Identity token (tests pass a fixed one).
    """
    pod = view.pod
    result = Mutation(pod=pod)
    if identity is None:
        result.decision = NO_ROLE
        return result
    if identity.mode == CONTAINER_CREDENTIALS:
        # Pod Identity has no role ARN of its own: the association names the role.
        return _mutate_container_credentials(view, identity, settings, jitter, result)
    if not identity.role_arn:
        result.decision = NO_ROLE
        # A role-arn too long to keep leaves no role, but its pods must say why they got no credentials.
        result.warnings.extend(w for w in identity.warnings if w.kind == ROLE_ARN_TOO_LONG)
        return result
    result.warnings.extend(identity.warnings)
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        result.decision = MALFORMED
        return result

    volumes = spec.get("volumes")
    existing = (
        next(
            (v for v in volumes or () if isinstance(v, dict) and v.get("name") == VOLUME_NAME),
            None,
        )
        if isinstance(volumes, list)
        else None
    )
    if existing is not None and not _is_token_volume(existing):
        # [ours] Injecting env that points at a file the conflicting volume will never hold only
        # breaks the pod later (upstream #315): leave it alone and say why.
        result.warnings.append(
            AdmissionWarning.make(
                "volume-conflict",
                f"pod already has a volume {VOLUME_NAME!r} that is not a projected token; not injecting",
            )
        )
        result.decision = VOLUME_CONFLICT
        return result

    new_spec = dict(spec)
    new_pod = dict(pod)
    new_pod["spec"] = new_spec

    if existing is None:
        expiration, warning = resolve_expiration(view, identity)
        if warning:
            result.warnings.append(warning)
        volume = _token_volume(VOLUME_NAME, identity.audience, expiration, TOKEN_FILE_NAME)
        append(new_spec, "volumes", [volume], "/spec", result.patch)
        result.volume = VOLUME_NAME

    token_file = settings.windows_token_file if view.windows else settings.token_file
    session_name = settings.role_session_name if identity.role_session_name is None else identity.role_session_name
    if session_name:
        session_name = _session_name_fits(view, result)
    how = Injection(
        VOLUME_NAME,
        settings.token_mount_path,
        settings.normalised_mount_path,
        CREDENTIAL_VARS,
        (identity.role_arn, token_file),
        identity.sts_regional_endpoints,
        _region(identity, settings),
        session_name,
    )
    inject_containers(view, spec, new_spec, how, result)
    return _finish(result, new_pod, identity.source)


def _mutate_container_credentials(
    view: PodView, identity: Identity, settings: Settings, jitter: Jitter, result: Mutation
) -> Mutation:
    """EKS Pod Identity: the agent's URI and token file, the token volume for its audience, the label.

    As upstream, a volume that already has the volume name is kept whatever it is (its mount too):
    the pod's author chose it.
    """
    result.warnings.extend(w for w in identity.warnings if w.kind not in _IRSA_ONLY_WARNINGS)
    pod = view.pod
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        result.decision = MALFORMED
        return result
    new_spec = dict(spec)
    new_pod = dict(pod)
    new_pod["spec"] = new_spec
    _add_label(pod, new_pod, result.patch)

    volume_name = settings.container_credentials_volume_name
    if volume_name not in names(spec.get("volumes")):
        expiration, warning = resolve_expiration(view, identity)
        if warning:
            result.warnings.append(warning)
        if expiration == JITTERED_EXPIRATION:
            expiration = jitter(JITTER_MIN, JITTERED_EXPIRATION)
        volume = _token_volume(
            volume_name,
            settings.container_credentials_audience,
            expiration,
            settings.container_credentials_token_path,
        )
        append(new_spec, "volumes", [volume], "/spec", result.patch)
        result.volume = volume_name

    token_file = settings.cc_windows_token_file if view.windows else settings.cc_token_file
    how = Injection(
        volume_name,
        settings.container_credentials_mount_path,
        settings.cc_normalised_mount_path,
        CONTAINER_CREDENTIAL_VARS,
        (settings.container_credentials_full_uri, token_file),
        identity.sts_regional_endpoints,
        _region(identity, settings),
        False,  # the container credentials provider takes no session name: the association names it
    )
    inject_containers(view, spec, new_spec, how, result)
    return _finish(result, new_pod, identity.source)


def _session_name_fits(view: PodView, result: Mutation) -> bool:
    """Whether the pod's final name can be a session name; a warning when it cannot.

    A longer name is not injected: STS would reject every AssumeRoleWithWebIdentity call with it, so
    the pod would get no credentials at all, when without it the SDK picks a session name of its own.
    """
    if view.name:
        length = len(view.name)
    elif view.generate_name:
        # The name is not chosen yet at admission; its length is (so it never exceeds 63 today).
        length = min(len(view.generate_name), _GENERATE_NAME_BASE) + _GENERATE_NAME_SUFFIX
    else:
        return True
    if length <= MAX_SESSION_NAME:
        return True
    result.warnings.append(
        AdmissionWarning.make(
            "role-session-name-too-long",
            f"pod name has {length} characters, STS allows {MAX_SESSION_NAME}: AWS_ROLE_SESSION_NAME not injected",
        )
    )
    return False


def _add_label(pod: Pod, new_pod: Pod, patch: list[PatchOp]) -> None:
    """``eks.amazonaws.com/pod-identity: enabled`` unless the pod has that label (any value) already."""
    meta = pod.get("metadata")
    if meta is None:  # absent or null: only a hand-made request; the API server always sends metadata
        new_meta: dict[str, Any] = {"labels": {POD_IDENTITY_LABEL: POD_IDENTITY_LABEL_VALUE}}
        new_pod["metadata"] = new_meta
        patch.append({"op": "add", "path": "/metadata", "value": new_meta})
        return
    if not isinstance(meta, dict):
        return
    labels = meta.get("labels")
    if isinstance(labels, dict):
        if POD_IDENTITY_LABEL in labels:
            return
        new_labels = {**labels, POD_IDENTITY_LABEL: POD_IDENTITY_LABEL_VALUE}
        patch.append({"op": "add", "path": _POD_IDENTITY_LABEL_POINTER, "value": POD_IDENTITY_LABEL_VALUE})
    elif labels is None:  # absent or null: one add creates the map
        new_labels = {POD_IDENTITY_LABEL: POD_IDENTITY_LABEL_VALUE}
        patch.append({"op": "add", "path": "/metadata/labels", "value": new_labels})
    else:  # not a map: no label can be added to it
        return
    new_meta = dict(meta)
    new_meta["labels"] = new_labels
    new_pod["metadata"] = new_meta


def _finish(result: Mutation, new_pod: Pod, source: str) -> Mutation:
    if result.patch:
        # The marker records the containers given the credential pair now (the audit's ground truth),
        # merged with those an earlier call (reinvocation) recorded.
        mark(new_pod, result.credentialed, source, result.patch)
        result.pod = new_pod
        result.decision = MUTATED
    else:
        # Only reachable with the token volume already present (a missing one is always added,
        # even when every container is skipped, as upstream does).
        result.decision = ALREADY_MUTATED
    return result
