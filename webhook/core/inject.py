"""Into each container: what one mode puts there (:class:`Injection`), appended after what the
container has, and the record of what was added (:class:`Mutation`, :class:`Injected`).

Existing env is never changed; new variables are appended in this order: regional STS, region, the
credential pair, the session name. One credential variable present suppresses the pair. The region
pair is kept whole instead [ours]: a container that sets one of the two gets the other with the same
definition, because boto3 reads only ``AWS_DEFAULT_REGION`` while other SDKs (the Java SDK v2 for
one) read ``AWS_REGION``, so either name alone leaves some SDK without a region. A container that
already has a credential variable, a region variable and ``AWS_STS_REGIONAL_ENDPOINTS`` is left
entirely alone (upstream's exception, kept even when that region variable is alone); one that
mounts something else at the token's mount path is left alone with a warning [ours].
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from webhook.core.outcomes import MUTATED
from webhook.core.pod import PodView
from webhook.core.records import AdmissionWarning, PatchOp, Pod

STS_VAR = "AWS_STS_REGIONAL_ENDPOINTS"
DEFAULT_REGION_VAR = "AWS_DEFAULT_REGION"
REGION_VAR = "AWS_REGION"
# The deepest value the region partner copies. In a real env entry it is two objects deep at most
# (``valueFrom: {configMapKeyRef: {...}}``); only a hostile request nests further, and copying that
# into the patch could exceed what the JSON encoder accepts (orjson: 255 levels), turning the
# answer into a 500.
MAX_COPY_DEPTH = 32
SESSION_NAME_VAR = "AWS_ROLE_SESSION_NAME"
# Init containers first: the order only affects the order of operations, not the result.
CONTAINER_FIELDS = ("initContainers", "containers")


class Injected(NamedTuple):
    """What the mutation added to one container: its name (``#<index>`` for a nameless one) and the
    env entries appended to it (the mount may come with them or alone).

    The entries are the very list the patch carries (no copy on the hot path); read-only, as the patch.
    """

    container: str
    env: list[dict[str, Any]]

    @property
    def variables(self) -> tuple[str, ...]:
        """The names of the variables appended, in order."""
        return tuple(entry["name"] for entry in self.env)


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
    credentialed: list[str] = field(default_factory=list)
    """The containers given the credential pair (what the admission marker records), in order."""


def names(items: Any) -> set[str]:
    if not isinstance(items, list):
        return set()
    # Only string names count: kube-apiserver sends nothing else, and str() of a hostile nested
    # value could raise RecursionError.
    return {name for item in items if isinstance(item, dict) and isinstance(name := item.get("name"), str)}


def append(parent: dict[str, Any], key: str, items: list[dict[str, Any]], path: str, patch: list[PatchOp]) -> None:
    """Append ``items`` to ``parent[key]`` (a fresh list) and record the matching add operations."""
    existing = parent.get(key)
    if isinstance(existing, list):
        parent[key] = [*existing, *items]
        patch.extend({"op": "add", "path": f"{path}/{key}/-", "value": item} for item in items)
    else:  # absent (or null): one add creates the list
        parent[key] = list(items)
        patch.append({"op": "add", "path": f"{path}/{key}", "value": list(items)})


class Injection(NamedTuple):
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


def _env_additions(container: Mapping[str, Any], how: Injection) -> tuple[list[dict[str, Any]], bool] | None:
    """Env entries to append in order (regional STS, region, credentials) and whether the credential
    pair is among them; None for the fully-configured container exception."""
    present = names(container.get("env"))
    first, second = how.credential_names
    has_credentials = first in present or second in present
    has_default_region = DEFAULT_REGION_VAR in present
    has_region = REGION_VAR in present
    has_sts = STS_VAR in present
    if has_credentials and (has_default_region or has_region) and has_sts:
        return None  # upstream leaves such a container entirely alone, mount included
    env: list[dict[str, Any]] = []
    if how.regional_sts and not has_sts:
        env.append({"name": STS_VAR, "value": "regional"})
    if has_default_region != has_region:
        # The container chose its region: the other name gets that choice, never the configured one.
        partner = _region_partner(container["env"], DEFAULT_REGION_VAR if has_default_region else REGION_VAR)
        if partner is not None:
            env.append(partner)
    elif how.region and not has_region:
        env.append({"name": DEFAULT_REGION_VAR, "value": how.region})
        env.append({"name": REGION_VAR, "value": how.region})
    if not has_credentials:
        env.append({"name": first, "value": how.credential_values[0]})
        env.append({"name": second, "value": how.credential_values[1]})
    if how.session_name and SESSION_NAME_VAR not in present:
        # The downward API gives the pod's final name, so a generateName pod gets the name it ends up
        # with. A fresh dict each time: one shared constant would tie every container and every request
        # together (a caller that edits one result would change the next; YAML prints it as anchors).
        env.append({"name": SESSION_NAME_VAR, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    return env, not has_credentials


def _region_partner(env: list[Any], present: str) -> dict[str, Any] | None:
    """The region variable ``present`` is not, defined as the container defines ``present``; None when
    that definition is nested too deeply to copy (see :data:`MAX_COPY_DEPTH`).

    The last entry of that name is the one the kubelet applies. Everything but the name is copied
    (``value``, ``valueFrom``, a field this code does not know), so both names always resolve to the
    same region. The copy shares nothing with the pod: the two entries are separate objects in the
    mutated pod, as in one written by hand (YAML output shows no anchors).
    """
    entry: dict[str, Any] = {}
    for entry in reversed(env):  # ``present`` came from this list: the loop always finds it
        if isinstance(entry, dict) and entry.get("name") == present:
            break
    partner: dict[str, Any] = {"name": REGION_VAR if present == DEFAULT_REGION_VAR else DEFAULT_REGION_VAR}
    for key, value in entry.items():
        if key == "name":
            continue
        # A str (``value``) needs no copy: the common case stays cheap.
        copied = json_copy(value) if isinstance(value, (dict, list)) else value
        if copied is None and value is not None:
            return None
        partner[key] = copied
    return partner


def json_copy(value: Any) -> Any:
    """A copy of a decoded JSON value with fresh dicts and lists at every depth; None when it nests
    deeper than :data:`MAX_COPY_DEPTH`.

    Without recursion, so that no input can raise RecursionError on the way to the depth check.
    """
    if not isinstance(value, (dict, list)):
        return value
    root: Any = dict(value) if isinstance(value, dict) else list(value)
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        for key, child in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(child, (dict, list)):
                if depth >= MAX_COPY_DEPTH:
                    return None
                fresh = dict(child) if isinstance(child, dict) else list(child)
                node[key] = fresh
                stack.append((fresh, depth + 1))
    return root


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


def inject_containers(
    view: PodView, spec: dict[str, Any], new_spec: dict[str, Any], how: Injection, result: Mutation
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
            additions = _env_additions(container, how)
            if additions is None:
                continue
            env, credentials = additions
            path = f"/spec/{field_name}/{index}"
            new_container = dict(container)
            if env:
                append(new_container, "env", env, path, patch)
            if how.volume_name not in names(container.get("volumeMounts")):
                mount = {"name": how.volume_name, "mountPath": how.mount_path, "readOnly": True}
                append(new_container, "volumeMounts", [mount], path, patch)
            elif not env:
                continue  # nothing to add: the container is as the mutation would leave it
            result.injected.append(Injected(name, env))
            if credentials:
                result.credentialed.append(name)
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
