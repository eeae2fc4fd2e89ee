"""What the deploy tests read from a render: the objects by kind and name, label selectors as
Kubernetes applies them, the webhook's container and the flags it starts with, and what every
overlay is meant to have."""

from __future__ import annotations

import argparse
from typing import Any

from webhook.commands import serve
from webhook.options.config import serve_config
from webhook.options.flags import resolve
from webhook.sources.configmap import CONFIG_MAP_NAME

from .render import overlays

Obj = dict[str, Any]
Rendered = dict[str, list[Obj]]  # {overlay or render: its objects}

OVERLAYS = overlays()
NAMESPACE = "irsa-webhook"
SKIP_LABEL = "eks.amazonaws.com/skip-pod-identity-webhook"
# From SIGTERM to SIGKILL the pod needs the delay, the in-flight bound and this much to exit.
EXIT_MARGIN_SECONDS = 2
# Which certificate component and failure policy each overlay is meant to have (config_map: the
# configmap-mapping component, test_deploy_configmap.py).
EXPECTED = {
    "default": {
        "certs": "cert-manager",
        "failure_policy": "Ignore",
        "tag": "0.1.0",
        "monitor": False,
        "config_map": False,
    },
    "kind": {"certs": "self-signed", "failure_policy": "Ignore", "tag": "dev", "monitor": False, "config_map": False},
    "dev": {"certs": "cert-manager", "failure_policy": "Fail", "tag": "dev", "monitor": True, "config_map": True},
}


def one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(objs: list[Obj]) -> set[str]:
    return {o["kind"] for o in objs}


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions, ANDed)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def container_of(objs: list[Obj]) -> Obj:
    containers = one(objs, "Deployment", "irsa-webhook")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: Obj = containers[0]
    return container


def assert_configmap_rbac(objs: list[Obj], namespace: str) -> None:
    role = one(objs, "Role")
    assert role["metadata"]["namespace"] == namespace
    # Read-only, on the one ConfigMap the code follows (list and watch carry its name as a field
    # selector, which resourceNames covers); nothing cluster-wide, no Secrets, no wildcards.
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [CONFIG_MAP_NAME],
            "verbs": ["get", "list", "watch"],
        }
    ]
    binding = one(objs, "RoleBinding")
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": namespace}
    ]
    assert one(objs, "ServiceAccount", pod["serviceAccountName"])["metadata"]["namespace"] == namespace


def serve_config_of(container: Obj, pod_namespace: str) -> Any:
    """The container's args and env read by serve's own flag parser, as the kubelet would start it."""
    environ: dict[str, str] = {}
    for var in container.get("env", []):
        if var.get("valueFrom") == {"fieldRef": {"fieldPath": "metadata.namespace"}}:
            environ[var["name"]] = pod_namespace  # the downward API's value
        elif "value" in var:
            environ[var["name"]] = var["value"]
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", *container["args"]])
    return serve_config(resolve(args, args.flags, environ))
