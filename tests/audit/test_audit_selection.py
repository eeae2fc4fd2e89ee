"""Label selectors and webhook rules as kube-apiserver evaluates them (webhook.audit.selection)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.kubeapi.http import shipped_configuration
from webhook.audit.selection import CALLED, MAYBE, NOT_CALLED, SelectorError, matches, namespace_labels, selection

LABELS = {"app": "web", "tier": "api"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, True),
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "db"}}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "web"]}]}, True),
        ({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["x"]}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "missing", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
        # Every requirement must hold.
        ({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
    ],
)
def test_label_selectors(selector: dict[str, Any], expected: bool) -> None:
    assert matches(selector, LABELS) is expected


def webhook(**extra: Any) -> dict[str, Any]:
    rule = {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
    return {"name": "w", "rules": [rule], **extra}


def test_the_shipped_configuration_leaves_out_the_skip_label_and_the_webhooks_namespace_and_pods() -> None:
    shipped = selection(shipped_configuration())
    shop = namespace_labels("shop", {})
    assert shipped.calls(shop, {}) == CALLED
    assert shipped.calls(shop, {"eks.amazonaws.com/skip-pod-identity-webhook": "false"}) == NOT_CALLED
    assert shipped.calls(shop, {"app.kubernetes.io/name": "irsa-webhook"}) == NOT_CALLED
    assert shipped.calls(namespace_labels("irsa-webhook", {}), {}) == NOT_CALLED
    opted_out = {"kubernetes.io/metadata.name": "x", "eks.amazonaws.com/skip-pod-identity-webhook": ""}
    assert shipped.calls(opted_out, {}) == NOT_CALLED


def test_only_webhooks_whose_rules_cover_pod_create_count_and_any_one_calls() -> None:
    other = webhook(rules=[{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}])
    assert selection({"webhooks": [other]}).calls({}, {}) == NOT_CALLED
    wildcard = webhook(rules=[{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}])
    assert selection({"webhooks": [wildcard]}).calls({}, {}) == CALLED
    labelled = webhook(objectSelector={"matchLabels": {"irsa": "on"}})
    both = selection({"webhooks": [labelled, webhook(namespaceSelector={"matchLabels": {"team": "a"}})]})
    assert both.calls({"team": "a"}, {}) == CALLED
    assert both.calls({}, {"irsa": "on"}) == CALLED
    assert both.calls({}, {}) == NOT_CALLED


def test_match_conditions_make_a_pod_a_maybe_unless_another_webhook_surely_calls() -> None:
    conditional = webhook(matchConditions=[{"name": "c", "expression": "true"}])
    assert selection({"webhooks": [conditional]}).calls({}, {}) == MAYBE
    assert selection({"webhooks": [conditional, webhook()]}).calls({}, {}) == CALLED


@pytest.mark.parametrize(
    "bad",
    [
        {"webhooks": ["x"]},
        {"webhooks": [webhook(objectSelector="app=web")]},
        {"webhooks": [webhook(objectSelector={"matchExpressions": [{"key": "a", "operator": "Near"}]})]},
        {"webhooks": [webhook(namespaceSelector={"matchExpressions": [{"key": "a", "operator": "In"}]})]},
        {"webhooks": [webhook(objectSelector={"matchLabels": {"a": 1}})]},
    ],
)
def test_a_selector_kube_apiserver_would_refuse_is_an_error(bad: dict[str, Any]) -> None:
    with pytest.raises(SelectorError):
        selection(bad)


def test_a_namespace_created_after_the_list_has_its_name_label() -> None:
    assert namespace_labels("new", {"old": {"a": "b"}}) == {"kubernetes.io/metadata.name": "new"}
    assert namespace_labels("old", {"old": {"a": "b"}}) == {"a": "b"}
