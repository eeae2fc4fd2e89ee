"""The pure mutation: (raw pod, identity, settings) → (mutated pod, JSON Patch, warnings).

Two credential modes share one injection: IRSA (``AWS_ROLE_ARN`` and a web identity token) and EKS
Pod Identity (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and a token for the node's agent, plus the
``eks.amazonaws.com/pod-identity`` label). The same containers are chosen, skipped and left alone in
both; only the names and values differ.

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

import posixpath
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from webhook.core.annotations import parse_expiration, scalar_text
from webhook.core.outcomes import ALREADY_MUTATED, MALFORMED, MUTATED, NO_ROLE, VOLUME_CONFLICT
from webhook.core.pod import PodView
from webhook.core.records import CONTAINER_CREDENTIALS, AdmissionWarning, Identity, PatchOp, Pod
from webhook.core.settings import TOKEN_FILE_NAME, VOLUME_NAME, Settings

CREDENTIAL_VARS = ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
CONTAINER_CREDENTIAL_VARS = ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
REGION_VARS = ("AWS_DEFAULT_REGION", "AWS_REGION")
STS_VAR = "AWS_STS_REGIONAL_ENDPOINTS"
SESSION_NAME_VAR = "AWS_ROLE_SESSION_NAME"
# The downward API gives the pod's final name, so a generateName pod gets the name it ends up with.
_SESSION_NAME_ENV = {"name": SESSION_NAME_VAR, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
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
_IRSA_ONLY_WARNINGS = frozenset({"invalid-role-arn", "invalid-audience", "invalid-role-session-name"})
# Init containers first: the order only affects the order of operations, not the result.
CONTAINER_FIELDS = ("initContainers", "containers")


class Injected(NamedTuple):
    """What the mutation added to one container: its name (``#<index>`` for a nameless one) and the
    names of the variables appended to its env (the mount may come with them or alone)."""

    container: str
    variables: tuple[str, ...]


@dataclass(slots=True)
class Mutation:
    pod: Pod
    patch: list[PatchOp] = field(default_factory=list)
    warnings: list[AdmissionWarning] = field(default_factory=list)
    decision: str = MUTATED
    volume: str = ""
    """The name of the token volume this mutation added ("": none was added)."""
    injected: list[Injected] = field(default_factory=list)
    """Every container this mutation changed, in the patch's order: the audit reads what was added
    from here instead of diffing pod specs."""


def _is_token_volume(volume: Mapping[str, Any]) -> bool:
    projected = volume.get("projected")
    if not isinstance(projected, dict):
        return False
    sources = projected.get("sources")
    return isinstance(sources, list) and any(
        isinstance(s, dict) and isinstance(s.get("serviceAccountToken"), dict) for s in sources
    )


def _names(items: Any) -> set[str]:
    if not isinstance(items, list):
        return set()
    # Only string names count: kube-apiserver sends nothing else, and str() of a hostile nested
    # value could raise RecursionError.
    return {name for item in items if isinstance(item, dict) and isinstance(name := item.get("name"), str)}


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


def _append(parent: dict[str, Any], key: str, items: list[dict[str, Any]], path: str, patch: list[PatchOp]) -> None:
    """Append ``items`` to ``parent[key]`` (a fresh list) and record the matching add operations."""
    existing = parent.get(key)
    if isinstance(existing, list):
        parent[key] = [*existing, *items]
        patch.extend({"op": "add", "path": f"{path}/{key}/-", "value": item} for item in items)
    else:  # absent (or null): one add creates the list
        parent[key] = list(items)
        patch.append({"op": "add", "path": f"{path}/{key}", "value": list(items)})


class _Injection(NamedTuple):
    """What one mode puts into each container: the token volume's mount and the credential pair.

    A NamedTuple, not a frozen dataclass: it is built on every admission, and a frozen dataclass's
    ``__init__`` (one ``object.__setattr__`` per field) costs several times more.
    """

    volume_name: str
    mount_path: str  # as given: the mount's mountPath
    normalised_mount_path: str  # for the mount-path conflict check
    credential_names: tuple[str, str]
    credential_values: tuple[str, str]
    regional_sts: bool
    region: str
    session_name: bool  # append AWS_ROLE_SESSION_NAME (IRSA only)


def _env_additions(container: Mapping[str, Any], how: _Injection) -> list[dict[str, Any]] | None:
    """Env entries to append in order (regional STS, region, credentials); None for the fully-configured
    container exception."""
    present = _names(container.get("env"))
    first, second = how.credential_names
    has_credentials = first in present or second in present
    has_region = "AWS_DEFAULT_REGION" in present or "AWS_REGION" in present
    has_sts = STS_VAR in present
    if has_credentials and has_region and has_sts:
        return None  # upstream leaves such a container entirely alone, mount included
    env: list[dict[str, Any]] = []
    if how.regional_sts and not has_sts:
        env.append({"name": STS_VAR, "value": "regional"})
    if how.region and not has_region:
        env.append({"name": "AWS_DEFAULT_REGION", "value": how.region})
        env.append({"name": "AWS_REGION", "value": how.region})
    if not has_credentials:
        env.append({"name": first, "value": how.credential_values[0]})
        env.append({"name": second, "value": how.credential_values[1]})
    if how.session_name and SESSION_NAME_VAR not in present:
        env.append(_SESSION_NAME_ENV)
    return env


def _mount_conflict(container: Mapping[str, Any], mount_path: str, volume_name: str) -> str | None:
    """Name of another volume already mounted at the token mount path (normalised), if any."""
    leaf = mount_path.rsplit("/", 1)[-1]
    mounts = container.get("volumeMounts")
    if not isinstance(mounts, list):
        return None
    for mount in mounts:
        if not isinstance(mount, dict) or mount.get("name") == volume_name:
            continue
        path = mount.get("mountPath")
        # normpath only where it could matter: it is the costly part of this loop
        if isinstance(path, str) and (path == mount_path or (leaf in path and posixpath.normpath(path) == mount_path)):
            name = mount.get("name")
            return name if isinstance(name, str) else "?"
    return None


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
        _append(new_spec, "volumes", [volume], "/spec", result.patch)
        result.volume = VOLUME_NAME

    token_file = settings.windows_token_file if view.windows else settings.token_file
    session_name = settings.role_session_name if identity.role_session_name is None else identity.role_session_name
    if session_name:
        session_name = _session_name_fits(view, result)
    how = _Injection(
        VOLUME_NAME,
        settings.token_mount_path,
        settings.normalised_mount_path,
        CREDENTIAL_VARS,
        (identity.role_arn, token_file),
        identity.sts_regional_endpoints,
        _region(identity, settings),
        session_name,
    )
    _inject_containers(view, spec, new_spec, how, result)
    return _finish(result, new_pod)


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
    if volume_name not in _names(spec.get("volumes")):
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
        _append(new_spec, "volumes", [volume], "/spec", result.patch)
        result.volume = volume_name

    token_file = settings.cc_windows_token_file if view.windows else settings.cc_token_file
    how = _Injection(
        volume_name,
        settings.container_credentials_mount_path,
        settings.cc_normalised_mount_path,
        CONTAINER_CREDENTIAL_VARS,
        (settings.container_credentials_full_uri, token_file),
        identity.sts_regional_endpoints,
        _region(identity, settings),
        False,  # the container credentials provider takes no session name: the association names it
    )
    _inject_containers(view, spec, new_spec, how, result)
    return _finish(result, new_pod)


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


def _inject_containers(
    view: PodView, spec: dict[str, Any], new_spec: dict[str, Any], how: _Injection, result: Mutation
) -> None:
    """Env and mount into every chosen container, into ``new_spec``: init and regular ones, only those
    ``include-containers`` names when it is set, minus those ``skip-containers`` names."""
    patch = result.patch
    mount_path = how.normalised_mount_path
    skipped = view.skip
    # A name that matches no container is not a problem: a later webhook may add that container, and
    # reinvocation then mutates it. So, unlike skip-containers, no warning.
    included = view.include
    seen: set[str] = set()
    for field_name in CONTAINER_FIELDS:
        containers = spec.get(field_name)
        if not isinstance(containers, list):
            continue
        new_list: list[Any] | None = None
        for index, container in enumerate(containers):
            if not isinstance(container, dict):
                continue
            raw_name = container.get("name")
            # A name that is not a string (only a hostile request has one) can match no
            # skip-containers entry and is shown by position.
            name = raw_name if isinstance(raw_name, str) else f"#{index}"
            if isinstance(raw_name, str):
                seen.add(raw_name)
                if raw_name in skipped:
                    continue
            if included is not None and raw_name not in included:
                continue
            conflict = _mount_conflict(container, mount_path, how.volume_name)
            if conflict is not None:
                result.warnings.append(
                    AdmissionWarning.make(
                        "mount-path-conflict",
                        f"container {name!r} already mounts {conflict!r} at {mount_path}; not injecting",
                    )
                )
                continue
            env = _env_additions(container, how)
            if env is None:
                continue
            path = f"/spec/{field_name}/{index}"
            new_container = dict(container)
            if env:
                _append(new_container, "env", env, path, patch)
            if how.volume_name not in _names(container.get("volumeMounts")):
                mount = {"name": how.volume_name, "mountPath": how.mount_path, "readOnly": True}
                _append(new_container, "volumeMounts", [mount], path, patch)
            elif not env:
                continue  # nothing to add: the container is as the mutation would leave it
            result.injected.append(Injected(name, tuple(entry["name"] for entry in env)))
            if new_list is None:
                new_list = list(containers)
            new_list[index] = new_container
        if new_list is not None:
            new_spec[field_name] = new_list

    unknown = sorted(skipped - seen)
    if unknown:
        result.warnings.append(
            AdmissionWarning.make("unknown-skip-container", f"skip-containers names no container: {', '.join(unknown)}")
        )


def _finish(result: Mutation, new_pod: Pod) -> Mutation:
    if result.patch:
        result.pod = new_pod
        result.decision = MUTATED
    else:
        # Only reachable with the token volume already present (a missing one is always added,
        # even when every container is skipped, as upstream does).
        result.decision = ALREADY_MUTATED
    return result
