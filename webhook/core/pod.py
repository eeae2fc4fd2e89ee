"""The pod read once: everything the rules need from a raw pod, taken out of it in one place.

The admission endpoint, the offline ``mutate`` command and the audit all start here, so a pod's
namespace, ServiceAccount and name are resolved one way, and its annotations are read once per
admission, not again by each rule. The pod itself stays the raw dict (fields this code does not know
must survive untouched); the view only points into it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from webhook.core.annotations import container_names, pod_annotations
from webhook.core.records import Pod
from webhook.core.settings import Settings


class PodView(NamedTuple):
    """One pod as the rules see it. A NamedTuple: it is built on every admission, and a frozen
    dataclass's ``__init__`` costs several times more."""

    pod: Pod
    """The raw pod; never modified."""
    namespace: str
    service_account: str
    """``spec.serviceAccountName``, else the deprecated ``spec.serviceAccount``, else ``default``."""
    name: str
    """``metadata.name`` (else the request's name); empty for a generateName pod at admission."""
    generate_name: str
    windows: bool
    """nodeSelector ``kubernetes.io/os``/``beta.kubernetes.io/os`` or ``spec.os.name`` is ``windows`` [ours]."""
    expiration: Any
    """The pod's ``token-expiration`` annotation as given (None: absent); the rules check it."""
    skip: frozenset[str]
    """``skip-containers``: names, trimmed [ours], of containers left untouched."""
    include: frozenset[str] | None
    """``include-containers`` [ours]: only these are mutated; None when the pod does not say (absent or
    naming nothing, the same as absent: a template that rendered it empty)."""

    @property
    def shown_name(self) -> str:
        """The name for a log line: the final name, else the generateName prefix."""
        return self.name or self.generate_name


class _NotAString(ValueError):
    pass


def _text(value: Any, where: str) -> str:
    """A string field: absent or null is empty; any other type makes the pod unreadable.

    The API server always sends strings here; only a hostile or broken caller sends a list, and
    guessing a value for it (``default``) could hand the pod another account's role.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise _NotAString(f"{where} in the Pod CREATE is not a string")


def is_windows(spec: Mapping[str, Any]) -> bool:
    selector = spec.get("nodeSelector")
    if isinstance(selector, dict) and "windows" in (
        selector.get("kubernetes.io/os"),
        selector.get("beta.kubernetes.io/os"),
    ):
        return True
    pod_os = spec.get("os")
    return isinstance(pod_os, dict) and pod_os.get("name") == "windows"


def read_pod(obj: Any, settings: Settings, namespace: Any = None, name: Any = None) -> PodView | str:
    """A :class:`PodView` of ``obj``, or the reason it cannot be read (a Pod CREATE answers it with 400).

    ``namespace`` and ``name`` are the AdmissionReview request's (the pod object may lack both: a
    generateName pod has no name yet, and the API server fills the namespace in after admission);
    the pod's own metadata is used when they are empty, then ``default`` for the namespace.
    """
    if not isinstance(obj, dict):
        return "request.object is missing or is not a Pod object"
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    spec = obj.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    try:
        namespace_text = (
            _text(namespace, "request.namespace") or _text(meta.get("namespace"), "metadata.namespace") or "default"
        )
        service_account = (
            _text(spec.get("serviceAccountName"), "spec.serviceAccountName")
            or _text(spec.get("serviceAccount"), "spec.serviceAccount")
            or "default"
        )
        name_text = _text(meta.get("name"), "metadata.name") or _text(name, "request.name")
        generate_name = _text(meta.get("generateName"), "metadata.generateName")
    except _NotAString as exc:
        return str(exc)
    annotations = pod_annotations(obj)
    return PodView(
        obj,
        namespace_text,
        service_account,
        name_text,
        generate_name,
        is_windows(spec),
        annotations.get(settings.pod_expiration_key),
        container_names(annotations, settings.skip_containers_key),
        container_names(annotations, settings.include_containers_key) or None,
    )
