"""Which pods kube-apiserver sends to the webhook: the MutatingWebhookConfiguration as the cluster holds
it, evaluated as kube-apiserver evaluates it (pure).

The audit must never judge a pod the webhook is not called for: such a pod comes back from an
eviction exactly as it was, and is evicted again at the next run. So the selectors are read from the
cluster (the chart's ``mutatingWebhook.objectSelector``, opt-in namespaces, the fail-closed
component's kube-system exclusion, a hand edit: all of them), never assumed.

A webhook of the configuration calls us for a pod CREATE when one of its rules covers pods, its
``namespaceSelector`` matches the namespace's labels and its ``objectSelector`` the pod's. Label
selectors mean what they mean in ``metav1.LabelSelector``: every ``matchLabels`` pair and every
``matchExpressions`` requirement (``In``, ``NotIn``, ``Exists``, ``DoesNotExist``); an empty or absent
selector matches everything. ``matchConditions`` are CEL, which this module does not evaluate: a pod
only such a webhook would select is "maybe", and is never evicted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The name of the shipped MutatingWebhookConfiguration (the chart names it after its release).
DEFAULT_WEBHOOK_CONFIGURATION = "irsa-webhook"

CALLED = "called"
NOT_CALLED = "not-called"
MAYBE = "match-conditions"  # selected, but CEL matchConditions decide, which the audit cannot evaluate


class SelectorError(ValueError):
    """A selector kube-apiserver would not have stored; the message says which."""


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check_selector(selector: Any, where: str) -> dict[str, Any]:
    if selector is None:
        return {}
    if not isinstance(selector, dict):
        raise SelectorError(f"{where} is not a label selector")
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict) or not all(isinstance(v, str) for v in match_labels.values()):
        raise SelectorError(f"{where}.matchLabels is not a map of strings")
    for requirement in selector.get("matchExpressions") or ():
        if not isinstance(requirement, dict) or not isinstance(requirement.get("key"), str):
            raise SelectorError(f"{where}.matchExpressions has an entry without a key")
        operator, values = requirement.get("operator"), requirement.get("values") or []
        if operator in ("In", "NotIn"):
            if not _strings(values) or not values:
                raise SelectorError(f"{where}: {operator} needs values")
        elif operator not in ("Exists", "DoesNotExist"):
            raise SelectorError(f"{where}: unknown operator {operator!r}")
    return selector


def matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """Whether ``labels`` satisfy a (checked) label selector."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in selector.get("matchExpressions") or ():
        key, operator = requirement["key"], requirement["operator"]
        present = key in labels
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator == "In" and (not present or labels[key] not in requirement["values"]):
            return False
        # NotIn is also satisfied by a missing label, as in Kubernetes.
        if operator == "NotIn" and present and labels[key] in requirement["values"]:
            return False
    return True


def _covers(values: Any, wanted: str, wildcard: str = "*") -> bool:
    return isinstance(values, list) and (wanted in values or wildcard in values)


def _covers_pod_create(rule: Any) -> bool:
    if not isinstance(rule, dict):
        return False
    resources = rule.get("resources")
    return (
        _covers(rule.get("operations"), "CREATE")
        and _covers(rule.get("apiGroups"), "")
        and _covers(rule.get("apiVersions"), "v1")
        and (_covers(resources, "pods") or _covers(resources, "pods", "*/*"))
        and rule.get("scope", "*") in ("*", "Namespaced")
    )


@dataclass(frozen=True, slots=True)
class _Webhook:
    name: str
    namespace_selector: Mapping[str, Any]
    object_selector: Mapping[str, Any]
    conditional: bool  # has matchConditions


@dataclass(frozen=True, slots=True)
class Selection:
    """The pod-creating webhooks of one MutatingWebhookConfiguration."""

    configuration: str
    webhooks: tuple[_Webhook, ...]

    def calls(self, namespace_labels: Mapping[str, Any], pod_labels: Mapping[str, Any]) -> str:
        """CALLED, NOT_CALLED or MAYBE for a pod with these labels in a namespace with these."""
        verdict = NOT_CALLED
        for webhook in self.webhooks:
            if matches(webhook.namespace_selector, namespace_labels) and matches(webhook.object_selector, pod_labels):
                if not webhook.conditional:
                    return CALLED
                verdict = MAYBE
        return verdict


def selection(configuration: Any) -> Selection:
    """The :class:`Selection` of a MutatingWebhookConfiguration as the API server returns it (a dict).

    SelectorError when it has a selector kube-apiserver would have refused."""
    if not isinstance(configuration, dict):
        raise SelectorError("the webhook configuration is not an object")
    meta = configuration.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    webhooks = []
    for index, webhook in enumerate(configuration.get("webhooks") or ()):
        if not isinstance(webhook, dict):
            raise SelectorError(f"webhooks[{index}] is not an object")
        rules = webhook.get("rules")
        if not isinstance(rules, list) or not any(_covers_pod_create(rule) for rule in rules):
            continue  # a webhook for other objects: never called for a pod CREATE
        webhooks.append(
            _Webhook(
                name=str(webhook.get("name")),
                namespace_selector=_check_selector(
                    webhook.get("namespaceSelector"), f"webhooks[{index}].namespaceSelector"
                ),
                object_selector=_check_selector(webhook.get("objectSelector"), f"webhooks[{index}].objectSelector"),
                conditional=bool(webhook.get("matchConditions")),
            )
        )
    return Selection(name if isinstance(name, str) else "", tuple(webhooks))


def namespace_labels(name: str, listed: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    """The labels of namespace ``name`` as listed; a namespace created since the list has only the
    label kube-apiserver gives every namespace."""
    labels = listed.get(name)
    return labels if labels is not None else {"kubernetes.io/metadata.name": name}
