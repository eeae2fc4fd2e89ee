"""The admission marker: an annotation on every pod the webhook mutates that records what it wrote.

``irsa-webhook.io/injected: {"containers":["app"],"source":"serviceaccount"}`` names the containers
into which the webhook appended the credential pair (``AWS_ROLE_ARN``, or Pod Identity's
``AWS_CONTAINER_CREDENTIALS_FULL_URI``) and the identity source that named the role. It is the
audit's ground truth: a role the pod's own manifest set is not the webhook's, and a pod whose
replacement the webhook would leave alone must never be evicted for it (the Vault injector marks its
pods the same way).

The key is ours, not under ``--annotation-prefix``: it must never be mistaken for upstream's
annotations, and upstream ignores it. It is added with one more ``add`` operation; the rest of the
patch is upstream's. On reinvocation (a later webhook added a container, and we are called again)
the containers of this call are merged into those the marker already names.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from webhook.core.records import PatchOp, Pod

MARKER_ANNOTATION = "irsa-webhook.io/injected"
_POINTER = "/metadata/annotations/" + MARKER_ANNOTATION.replace("~", "~0").replace("/", "~1")
# A pod has at most a few hundred containers; a marker beyond this is not ours to trust or grow.
_MAX_MARKER_CHARS = 16_384


class Marker(NamedTuple):
    containers: tuple[str, ...]
    source: str


def read_marker(pod: Mapping[str, Any]) -> Marker | None:
    """The marker of a stored or admitted pod; None when it has none or one that is not ours."""
    meta = pod.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    raw = annotations.get(MARKER_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(raw, str) or len(raw) > _MAX_MARKER_CHARS:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    containers, source = value.get("containers"), value.get("source")
    if not isinstance(containers, list) or not all(isinstance(c, str) for c in containers):
        return None
    return Marker(tuple(containers), source if isinstance(source, str) else "")


# Container names are DNS labels and sources are fixed words: strings of these need no JSON escaping.
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._#-")


def marker_value(containers: Iterable[str], source: str) -> str:
    """Compact and key-sorted JSON, so the same record is always the same string."""
    names = tuple(containers)
    # On every mutated pod, and mostly the same few values ("app", "serviceaccount"): a few
    # containers' worth is cached (bounded: tenants choose the names), the rest formatted each time.
    return _cached_value(names, source) if len(names) <= _CACHED_NAMES else _value(names, source)


_CACHED_NAMES = 4


def _value(names: tuple[str, ...], source: str) -> str:
    # Plain names concatenated: a fraction of json.dumps with non-default options (an encoder per call).
    if _PLAIN.issuperset("".join(names) + source):
        quoted = '"' + '","'.join(names) + '"' if names else ""
        return '{"containers":[' + quoted + '],"source":"' + source + '"}'
    return json.dumps({"containers": list(names), "source": source}, separators=(",", ":"), sort_keys=True)


_cached_value = functools.lru_cache(maxsize=1024)(_value)


def mark(new_pod: Pod, containers: list[str], source: str, patch: list[PatchOp]) -> None:
    """Record ``containers`` (those given the credential pair by this call) on ``new_pod``, the
    mutated copy, and append the ``add`` operation. Only ``new_pod``'s metadata is replaced: the
    input pod, which shares subtrees with it, is never modified."""
    meta = new_pod.get("metadata")
    if meta is None:  # only a hand-made request has no metadata
        value = marker_value(containers, source)
        new_pod["metadata"] = {"annotations": {MARKER_ANNOTATION: value}}
        patch.append({"op": "add", "path": "/metadata", "value": {"annotations": {MARKER_ANNOTATION: value}}})
        return
    if not isinstance(meta, dict):
        return
    annotations = meta.get("annotations")
    if annotations is None:
        value = marker_value(containers, source)
        new_pod["metadata"] = {**meta, "annotations": {MARKER_ANNOTATION: value}}
        patch.append({"op": "add", "path": "/metadata/annotations", "value": {MARKER_ANNOTATION: value}})
        return
    if not isinstance(annotations, dict):
        return  # not a map: nothing can be added to it (kube-apiserver never sends one)
    previous = read_marker(new_pod) if MARKER_ANNOTATION in annotations else None
    if previous is not None:
        containers = [*previous.containers, *(c for c in containers if c not in previous.containers)]
        source = source or previous.source
    value = marker_value(containers, source)
    if annotations.get(MARKER_ANNOTATION) == value:
        return
    # "add" on an existing member replaces it (RFC 6902): the patch stays add-only.
    new_pod["metadata"] = {**meta, "annotations": {**annotations, MARKER_ANNOTATION: value}}
    patch.append({"op": "add", "path": _POINTER, "value": value})
