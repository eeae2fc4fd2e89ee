"""The provisioner's metrics: its Service (component provisioner, chart provisioner.enabled) reaches the
controller's --metrics-port and nothing else, and its ServiceMonitor (component provisioner-prometheus,
chart metrics.serviceMonitor.enabled with provisioner.enabled) scrapes that Service; the chart and the
components render the same objects.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import helm as chart
from .objects import Obj, Rendered, one, selects
from .provisioner import (
    CLUSTER,
    MONITOR_RENDER,
    NAME,
    RENDER,
    chart_render,
    comparable,
    controller,
    provisioner_objects,
)

SERVICE = f"{NAME}-metrics"
MONITOR = ["--set", "metrics.serviceMonitor.enabled=true"]


@pytest.fixture(scope="module")
def chart_objs(helm: Path) -> list[Obj]:
    """The chart with the provisioner and the ServiceMonitors, release irsa-webhook (the component's names)."""
    return chart_render(helm, "--set", f"provisioner.clusterName={CLUSTER}", *MONITOR)


def render_of(source: str, rendered: Rendered, chart_objs: list[Obj]) -> list[Obj]:
    return chart_objs if source == "chart" else rendered[MONITOR_RENDER]


def pod_labels(objs: list[Obj], name: str) -> dict[str, str]:
    labels: dict[str, str] = one(objs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("source", ["component", "chart"])
def test_the_service_reaches_the_controllers_metrics_port(
    rendered: Rendered, chart_objs: list[Obj], source: str
) -> None:
    objs = render_of(source, rendered, chart_objs)
    service = one(objs, "Service", SERVICE)
    assert service["metadata"]["namespace"] == NAME
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(objs, NAME))
    # Never a webhook replica: the webhook's own Services and this one stay apart.
    assert not selects({"matchLabels": service["spec"]["selector"]}, pod_labels(objs, "irsa-webhook"))
    (port,) = service["spec"]["ports"]
    box = controller(objs)
    (target,) = [p for p in box["ports"] if p["name"] == port["targetPort"]]
    assert f"--metrics-port={target['containerPort']}" in box["args"]
    assert (port["name"], port["port"], port["protocol"]) == ("metrics", 9090, "TCP")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"


@pytest.mark.parametrize("source", ["component", "chart"])
def test_the_service_monitor_scrapes_that_service_alone(rendered: Rendered, chart_objs: list[Obj], source: str) -> None:
    objs = render_of(source, rendered, chart_objs)
    monitor = one(objs, "ServiceMonitor", NAME)
    spec = monitor["spec"]
    scraped = [
        o
        for o in objs
        if o["kind"] == "Service"
        and o["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
        and selects(spec["selector"], o["metadata"]["labels"])
    ]
    assert [o["metadata"]["name"] for o in scraped] == [SERVICE]
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == one(objs, "Service", SERVICE)["spec"]["ports"][0]["name"]
    assert (endpoint["path"], endpoint["scheme"], endpoint["interval"]) == ("/metrics", "http", "30s")


def test_the_chart_renders_what_the_components_render(rendered: Rendered, chart_objs: list[Obj]) -> None:
    """The Service and the ServiceMonitor, names and specs (selectors aside, tested above)."""
    component = {(o["kind"], o["metadata"]["name"]): o for o in provisioner_objects(rendered[MONITOR_RENDER])}
    got = {(o["kind"], o["metadata"]["name"]): o for o in provisioner_objects(chart_objs)}
    for key in [("Service", SERVICE), ("ServiceMonitor", NAME)]:
        assert comparable(got[key]) == comparable(component[key]), key
    # Without provisioner-prometheus, the component renders no ServiceMonitor.
    assert [o for o in rendered[RENDER] if o["kind"] == "ServiceMonitor"] == []


def test_the_chart_monitors_the_provisioner_only_when_both_are_on(helm: Path) -> None:
    without = chart_render(helm, "--set", f"provisioner.clusterName={CLUSTER}")
    assert [o for o in without if o["kind"] == "ServiceMonitor"] == []
    webhook_only = chart_render(helm, "--set", "provisioner.enabled=false", *MONITOR)
    assert [o["metadata"]["name"] for o in webhook_only if o["kind"] == "ServiceMonitor"] == [chart.RELEASE]


def test_the_chart_monitor_follows_the_monitor_values(helm: Path) -> None:
    """metrics.serviceMonitor.namespace and additionalLabels: where your Prometheus finds monitors and
    what it selects them by, for both; the provisioner's still scrapes its own namespace."""
    objs = chart_render(
        helm,
        *("--set", f"provisioner.clusterName={CLUSTER}", *MONITOR),
        *("--set", "metrics.serviceMonitor.namespace=monitoring"),
        *("--set", "metrics.serviceMonitor.additionalLabels.release=kube-prometheus-stack"),
        *("--set", "metrics.serviceMonitor.interval=10s"),
    )
    monitors = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ServiceMonitor"}
    assert set(monitors) == {chart.RELEASE, NAME}
    for monitor in monitors.values():
        assert monitor["metadata"]["namespace"] == "monitoring"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["endpoints"][0]["interval"] == "10s"
    assert monitors[NAME]["spec"]["namespaceSelector"] == {"matchNames": [NAME]}
