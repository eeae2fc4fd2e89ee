"""What the provisioner's deploy tests share: its names, its objects in a render (the component's or
the chart's), its controller container, what the chart and the component may render differently,
and a user's overlay written into a copy of manifests/."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from tests.support.paths import MANIFESTS

from . import helm as chart
from .objects import Obj, one
from .render import documents

RENDER = "default+provisioner"
MONITOR_RENDER = "default+provisioner-prometheus"  # plus the component provisioner-prometheus
NAME = "irsa-webhook-provisioner"  # every object of the component, and its namespace
COMPONENT = MANIFESTS / "components" / "provisioner"
CLUSTER = "prod-eu-1"


def provisioner_objects(objs: list[Obj]) -> list[Obj]:
    """Every object labelled with the provisioner's component (its Service and ServiceMonitor too)."""
    return [o for o in objs if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "provisioner"]


def controller(objs: list[Obj], name: str = NAME) -> Obj:
    containers: list[Obj] = one(objs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    (box,) = containers
    assert box["name"] == "controller"
    return box


def chart_render(helm: Path, *args: str) -> list[Obj]:
    return documents(chart.template(helm, None, "--set", "provisioner.enabled=true", *args))


def comparable(obj: Obj) -> Obj:
    """OBJ without what the chart and the component may differ in: labels, annotations (the checkov
    skips are compared separately), label selectors and the Deployment's pod labels (the chart scopes
    them to the release; that they select the right objects is tested render by render)."""
    obj = copy.deepcopy(obj)
    obj["metadata"].pop("labels", None)
    obj["metadata"].pop("annotations", None)
    if obj["kind"] in {"Deployment", "Service", "ServiceMonitor"}:
        obj["spec"].pop("selector")
    if obj["kind"] == "Deployment":
        obj["spec"]["template"].pop("metadata")
    return obj


def checkov_skips(obj: Obj) -> set[str]:
    annotations = obj["metadata"].get("annotations", {})
    return {v.partition("=")[0] for k, v in annotations.items() if k.startswith("checkov.io/skip")}


def overlay(root: Path, name: str, kustomization: Obj) -> Path:
    """A user's overlay ROOT/overlays/NAME (ROOT: a copy of manifests/) with KUSTOMIZATION's fields."""
    folder = root / "overlays" / name
    folder.mkdir()
    (folder / "kustomization.yaml").write_text(
        yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **kustomization})
    )
    return folder
