"""The pure IRSA mutation: (raw pod, identity, settings) → (mutated pod, JSON Patch, warnings).

No I/O happens here. The input pod is never modified: the result shares every untouched subtree
with it and copies only the dicts and lists it appends to (copy-on-write), which keeps the hot path
cheap and guarantees that unknown fields survive as they were.

The patch is built alongside the copy and holds only ``add`` operations for what is new: a volume,
env entries, mounts. Its values are the very objects appended to the copy, and the copy shares
every untouched subtree with the input: callers treat all three as read-only (the server encodes
the patch at once, the CLI prints one of them). It never replaces an array, so nothing another
writer put in a container can be lost (upstream's whole-array replacement dropped fields in #84, #208 and kops#16802).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.identity import parse_expiration, pod_annotations, scalar_text, skip_containers
from webhook.settings import TOKEN_FILE_NAME, VOLUME_NAME, Settings
from webhook.types import AdmissionWarning, Identity, PatchOp, Pod

CREDENTIAL_VARS = ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
REGION_VARS = ("AWS_DEFAULT_REGION", "AWS_REGION")
STS_VAR = "AWS_STS_REGIONAL_ENDPOINTS"
# Init containers first: the order only affects the order of operations, not the result.
CONTAINER_FIELDS = ("initContainers", "containers")

# Decisions (they label the log line and the requests metric).
MUTATED = "mutated"
NO_ROLE = "no-role-arn"
ALREADY_MUTATED = "already-mutated"
VOLUME_CONFLICT = "volume-conflict"
MALFORMED = "malformed-pod"
DECISIONS = (MUTATED, NO_ROLE, ALREADY_MUTATED, VOLUME_CONFLICT, MALFORMED)


@dataclass(slots=True)
class Mutation:
    pod: Pod
    patch: list[PatchOp] = field(default_factory=list)
    warnings: list[AdmissionWarning] = field(default_factory=list)
    decision: str = MUTATED


def is_windows(spec: Mapping[str, Any]) -> bool:
    """Windows pods: nodeSelector ``kubernetes.io/os``/``beta.kubernetes.io/os`` or ``spec.os.name`` [ours]."""
    selector = spec.get("nodeSelector")
    if isinstance(selector, dict) and "windows" in (
        selector.get("kubernetes.io/os"),
        selector.get("beta.kubernetes.io/os"),
    ):
        return True
    pod_os = spec.get("os")
    return isinstance(pod_os, dict) and pod_os.get("name") == "windows"


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


def _token_volume(identity: Identity, expiration: int) -> dict[str, Any]:
    token: dict[str, Any] = {}
    if identity.audience:  # an empty audience means the API server's own (omitted, as upstream does)
        token["audience"] = identity.audience
    token["expirationSeconds"] = expiration
    token["path"] = TOKEN_FILE_NAME
    return {"name": VOLUME_NAME, "projected": {"sources": [{"serviceAccountToken": token}]}}


def _append(parent: dict[str, Any], key: str, items: list[dict[str, Any]], path: str, patch: list[PatchOp]) -> None:
    """Append ``items`` to ``parent[key]`` (a fresh list) and record the matching add operations."""
    existing = parent.get(key)
    if isinstance(existing, list):
        parent[key] = [*existing, *items]
        patch.extend({"op": "add", "path": f"{path}/{key}/-", "value": item} for item in items)
    else:  # absent (or null): one add creates the list
        parent[key] = list(items)
        patch.append({"op": "add", "path": f"{path}/{key}", "value": list(items)})


def _env_additions(
    container: Mapping[str, Any], identity: Identity, settings: Settings, token_file: str
) -> list[dict[str, Any]] | None:
    """Env entries to append in order (regional STS, region, credentials); None for the fully-configured
    container exception."""
    present = _names(container.get("env"))
    has_credentials = any(name in present for name in CREDENTIAL_VARS)
    has_region = any(name in present for name in REGION_VARS)
    has_sts = STS_VAR in present
    if has_credentials and has_region and has_sts:
        return None  # upstream leaves such a container entirely alone, mount included
    env: list[dict[str, Any]] = []
    if identity.sts_regional_endpoints and not has_sts:
        env.append({"name": STS_VAR, "value": "regional"})
    if settings.aws_default_region and not has_region:
        env.append({"name": "AWS_DEFAULT_REGION", "value": settings.aws_default_region})
        env.append({"name": "AWS_REGION", "value": settings.aws_default_region})
    if not has_credentials:
        env.append({"name": "AWS_ROLE_ARN", "value": identity.role_arn})
        env.append({"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": token_file})
    return env


def _mount_conflict(container: Mapping[str, Any], mount_path: str) -> str | None:
    """Name of another volume already mounted at the token mount path (normalised), if any."""
    leaf = mount_path.rsplit("/", 1)[-1]
    mounts = container.get("volumeMounts")
    if not isinstance(mounts, list):
        return None
    for mount in mounts:
        if not isinstance(mount, dict) or mount.get("name") == VOLUME_NAME:
            continue
        path = mount.get("mountPath")
        # normpath only where it could matter: it is the costly part of this loop
        if isinstance(path, str) and (path == mount_path or (leaf in path and posixpath.normpath(path) == mount_path)):
            name = mount.get("name")
            return name if isinstance(name, str) else "?"
    return None


def resolve_expiration(
    pod: Mapping[str, Any], identity: Identity, settings: Settings
) -> tuple[int, AdmissionWarning | None]:
    """The pod's ``token-expiration`` annotation overrides the ServiceAccount's (same rules)."""
    raw = pod_annotations(pod).get(settings.annotation("token-expiration"))
    if raw is None:
        return identity.token_expiration, None
    text = scalar_text(raw)
    return parse_expiration(raw if text is None else text, identity.token_expiration, "pod")


def mutate(pod: Pod, identity: Identity | None, settings: Settings) -> Mutation:
    """Inject IRSA into ``pod`` for ``identity``; the README's "What is injected" states every rule."""
    result = Mutation(pod=pod)
    if identity is None or not identity.role_arn:
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
    patch = result.patch

    if existing is None:
        expiration, warning = resolve_expiration(pod, identity, settings)
        if warning:
            result.warnings.append(warning)
        _append(new_spec, "volumes", [_token_volume(identity, expiration)], "/spec", patch)

    token_file = settings.windows_token_file if is_windows(spec) else settings.token_file
    mount_path = settings.normalised_mount_path
    skipped = skip_containers(pod_annotations(pod), settings)
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
            conflict = _mount_conflict(container, mount_path)
            if conflict is not None:
                result.warnings.append(
                    AdmissionWarning.make(
                        "mount-path-conflict",
                        f"container {name!r} already mounts {conflict!r} at {mount_path}; not injecting",
                    )
                )
                continue
            env = _env_additions(container, identity, settings, token_file)
            if env is None:
                continue
            path = f"/spec/{field_name}/{index}"
            new_container = dict(container)
            if env:
                _append(new_container, "env", env, path, patch)
            if VOLUME_NAME not in _names(container.get("volumeMounts")):
                mount = {"name": VOLUME_NAME, "mountPath": settings.token_mount_path, "readOnly": True}
                _append(new_container, "volumeMounts", [mount], path, patch)
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

    if patch:
        result.pod = new_pod
        result.decision = MUTATED
    else:
        # Only reachable with the token volume already present (a missing one is always added,
        # even when every container is skipped, as upstream does).
        result.decision = ALREADY_MUTATED
    return result
