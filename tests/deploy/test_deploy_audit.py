"""The audit components: `audit` (an hourly `irsa-webhook audit` CronJob, read-only RBAC) and `audit-evict`
(opt-in, on top: --evict and create on pods/eviction, nothing more).

Both are rendered on top of the default overlay as a user adds them (render.COMPONENT_RENDERS, in the
``rendered`` fixture with the overlays), with the project's kubectl; the CronJob's args are read back with
the audit's own flag parser. checkov scans these renders with the overlays (test_deploy_scan.py).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import MANIFESTS
from webhook.commands import audit, serve
from webhook.options.config import mutation_settings, serve_config
from webhook.options.flags import resolve
from webhook.options.tables import MUTATION_FLAGS
from webhook.sources.configmap import CONFIG_MAP_NAME

from .objects import NAMESPACE, Obj, Rendered, container_of, one, selects
from .render import documents, kustomize, render_components

AUDIT, EVICT = "default+audit", "default+audit-evict"
RENDERS = [AUDIT, EVICT]
READ_ONLY = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods", "serviceaccounts"], "verbs": ["get", "list"]},
    {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["mutatingwebhookconfigurations"],
        "resourceNames": ["irsa-webhook"],
        "verbs": ["get"],
    },
]
EVICTION = [{"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}]


def cronjob_of(objs: list[Obj]) -> Obj:
    return one(objs, "CronJob", "irsa-webhook-audit")


def pod_spec(objs: list[Obj]) -> Obj:
    spec: Obj = cronjob_of(objs)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def audit_container(objs: list[Obj]) -> Obj:
    containers: list[Obj] = pod_spec(objs)["containers"]
    (container,) = containers
    assert container["name"] == "audit"
    return container


def environ_of(container: Obj, pod_namespace: str) -> dict[str, str]:
    environ = {}
    for var in container.get("env", []):
        if var.get("valueFrom") == {"fieldRef": {"fieldPath": "metadata.namespace"}}:
            environ[var["name"]] = pod_namespace  # the downward API's value
        else:
            environ[var["name"]] = var["value"]
    return environ


def audit_args(container: Obj, pod_namespace: str) -> tuple[argparse.Namespace, Any]:
    """The CronJob's command read by the audit's own parser, as the kubelet would start it."""
    assert container["command"] == ["irsa-webhook", "audit"]
    parser = argparse.ArgumentParser()
    audit.register(parser.add_subparsers())
    args = parser.parse_args(["audit", *container["args"]])
    values = {flag.dest: flag.default for flag in serve.FLAGS}
    values.update(resolve(args, audit.FLAGS, environ_of(container, pod_namespace)))
    return args, serve_config(values)


def webhook_settings(objs: list[Obj]) -> Any:
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", *container_of(objs)["args"]])
    return mutation_settings(resolve(args, MUTATION_FLAGS, {}))


@pytest.mark.parametrize("render", RENDERS)
def test_the_webhook_itself_is_the_default_overlay(rendered: Rendered, render: str) -> None:
    objs = rendered[render]
    audit_objects = {(o["kind"], o["metadata"]["name"]) for o in objs if "audit" in o["metadata"]["name"]}
    webhook_objects = [o for o in objs if (o["kind"], o["metadata"]["name"]) not in audit_objects]
    assert webhook_objects == rendered["default"]
    expected = {
        ("ServiceAccount", "irsa-webhook-audit"),
        ("ClusterRole", "irsa-webhook-audit"),
        ("ClusterRoleBinding", "irsa-webhook-audit"),
        ("Role", "irsa-webhook-audit-configmap"),
        ("RoleBinding", "irsa-webhook-audit-configmap"),
        ("CronJob", "irsa-webhook-audit"),
    }
    if render == EVICT:
        expected |= {("ClusterRole", "irsa-webhook-audit-evict"), ("ClusterRoleBinding", "irsa-webhook-audit-evict")}
    assert audit_objects == expected


@pytest.mark.parametrize("render", RENDERS)
def test_the_cronjob_audits_with_the_webhooks_flags_and_image(rendered: Rendered, render: str) -> None:
    objs = rendered[render]
    container = audit_container(objs)
    assert container["image"] == container_of(objs)["image"]  # the same release judges as mutates
    assert container["imagePullPolicy"] == "IfNotPresent"
    args, config = audit_args(container, NAMESPACE)
    assert config.settings == webhook_settings(objs)
    # --namespace is the webhook's own (its pods are never mutated; the ConfigMap mode reads there).
    assert config.namespace == NAMESPACE
    assert args.evict is (render == EVICT)
    assert not args.dry_run
    assert (args.output, args.pods_namespace, args.exclude_namespace) == ("table", [], [])


@pytest.mark.parametrize("render", RENDERS)
def test_the_cronjob_is_hardened_and_bounded(rendered: Rendered, render: str) -> None:
    objs = rendered[render]
    cronjob = cronjob_of(objs)
    assert cronjob["metadata"]["namespace"] == NAMESPACE
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0  # exit 1 is a finding: never retried
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
    pod = pod_spec(objs)
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "irsa-webhook-audit"
    webhook_pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    # The webhook's hardening, minus the fsGroup its certificate volume needs (the audit mounts nothing).
    assert pod["securityContext"] == {k: v for k, v in webhook_pod["securityContext"].items() if k != "fsGroup"}
    container = audit_container(objs)
    assert container["securityContext"] == container_of(objs)["securityContext"]
    assert "volumeMounts" not in container
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}


@pytest.mark.parametrize("render", RENDERS)
def test_the_audits_pods_are_not_the_webhooks(rendered: Rendered, render: str) -> None:
    """The Service, PodDisruptionBudget and Deployment select the webhook's pods by label: an audit
    pod carrying those labels would get admissions routed to it and count toward the budget."""
    objs = rendered[render]
    labels = cronjob_of(objs)["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    deployment = one(objs, "Deployment")
    assert not selects(deployment["spec"]["selector"], labels)
    assert not selects(one(objs, "PodDisruptionBudget")["spec"]["selector"], labels)
    for service in (o for o in objs if o["kind"] == "Service"):
        assert not selects({"matchLabels": service["spec"]["selector"]}, labels)


@pytest.mark.parametrize("render", RENDERS)
def test_rbac_reads_only_and_evicts_only_when_asked(rendered: Rendered, render: str) -> None:
    objs = rendered[render]
    subject = [{"kind": "ServiceAccount", "name": "irsa-webhook-audit", "namespace": NAMESPACE}]
    assert one(objs, "ClusterRole", "irsa-webhook-audit")["rules"] == READ_ONLY
    binding = one(objs, "ClusterRoleBinding", "irsa-webhook-audit")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "irsa-webhook-audit",
    }
    assert binding["subjects"] == subject
    role = one(objs, "Role", "irsa-webhook-audit-configmap")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CONFIG_MAP_NAME], "verbs": ["get"]}
    ]
    role_binding = one(objs, "RoleBinding", "irsa-webhook-audit-configmap")
    assert role_binding["metadata"]["namespace"] == NAMESPACE
    assert role_binding["roleRef"]["name"] == role["metadata"]["name"]
    assert role_binding["subjects"] == subject
    evicting = [o for o in objs if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "irsa-webhook-audit-evict"]
    if render == AUDIT:
        assert evicting == []
        granted = [r for o in objs if o["kind"] in ("ClusterRole", "Role") for r in o["rules"]]
        assert not any("pods/eviction" in r["resources"] for r in granted)
        return
    assert evicting[0]["rules"] == EVICTION
    # Exactly the webhook's arguments (then --evict), and the configuration whose selectors it reads.
    webhook_args = one(objs, "Deployment", "irsa-webhook")["spec"]["template"]["spec"]["containers"][0]["args"]
    audit = cronjob_of(objs)["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert audit["args"] == [*webhook_args, "--evict"]
    configuration = one(objs, "MutatingWebhookConfiguration", "irsa-webhook")["metadata"]["name"]
    assert {"name": "IRSA_WEBHOOK_CONFIGURATION", "value": configuration} in audit["env"]
    evict_binding = one(objs, "ClusterRoleBinding", "irsa-webhook-audit-evict")
    assert evict_binding["roleRef"]["name"] == "irsa-webhook-audit-evict"
    assert evict_binding["subjects"] == subject


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    root = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, root, ignore=shutil.ignore_patterns("generated"))
    return root


def test_the_components_follow_a_renamed_namespace(kubectl: Path, copied: Path) -> None:
    objs = documents(render_components(kubectl, copied, EVICT, namespace="team-x"))
    for obj in objs:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "Namespace", "MutatingWebhookConfiguration"):
            assert obj["metadata"]["namespace"] == "team-x", obj["metadata"]
    for kind, name in [
        ("ClusterRoleBinding", "irsa-webhook-audit"),
        ("ClusterRoleBinding", "irsa-webhook-audit-evict"),
        ("RoleBinding", "irsa-webhook-audit-configmap"),
    ]:
        assert one(objs, kind, name)["subjects"][0]["namespace"] == "team-x"
    _args, config = audit_args(audit_container(objs), "team-x")
    assert config.namespace == "team-x"


def test_the_eviction_component_needs_the_audit_component(kubectl: Path, copied: Path) -> None:
    folder = copied / "overlays" / "evict-only"
    folder.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../default"],
        "components": ["../../components/audit-evict"],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    with pytest.raises(RuntimeError, match="irsa-webhook-audit"):
        kustomize(kubectl, folder)
