"""Pods on the local node: the probe container (:mod:`.inpod`) and running a pod to its end."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..controlplane import ControlPlane
from ..kuberest import KubeRest
from .cluster import APP_IMAGE

JSON = dict[str, Any]
PROBE_SOURCE = (Path(__file__).with_name("inpod.py")).read_text()
POD_TIMEOUT = 120.0


def probe_container(name: str, env: Mapping[str, str] | None = None, **fields: Any) -> JSON:
    """A container of the app image that runs the probe; ``env`` adds variables (the probe's switches,
    AWS_ENDPOINT_URL_STS...)."""
    container: JSON = {
        "name": name,
        "image": APP_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["python", "-c", PROBE_SOURCE],
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        **fields,
    }
    return container


def pod(name: str, service_account: str, containers: Sequence[JSON], **spec: Any) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": service_account,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": list(containers),
            **spec,
        },
    }


class PodFailed(AssertionError):
    pass


def wait_finished(kube: KubeRest, namespace: str, name: str, timeout: float = POD_TIMEOUT) -> JSON:
    """The pod once Succeeded or Failed (PodFailed with its status when it does not end in time)."""
    deadline = time.monotonic() + timeout
    current: JSON = {}
    while time.monotonic() < deadline:
        current = kube.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        if current.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return current
        time.sleep(0.3)
    raise PodFailed(f"pod {namespace}/{name} did not finish in {timeout}s: {json.dumps(current.get('status'))}")


def probes(plane: ControlPlane, namespace: str, name: str, containers: Sequence[str]) -> dict[str, JSON]:
    """The probe line of each container, from ``kubectl logs`` (what the kubelet kept)."""
    found: dict[str, JSON] = {}
    for container in containers:
        logs = plane.kubectl("logs", "-n", namespace, name, "-c", container).stdout
        lines = [line for line in logs.splitlines() if line.startswith("PROBE ")]
        if not lines:
            raise PodFailed(f"no probe line from {namespace}/{name}/{container}; logs:\n{logs}")
        found[container] = json.loads(lines[-1].removeprefix("PROBE "))
    return found


def run_probe_pod(kube: KubeRest, plane: ControlPlane, namespace: str, manifest: JSON) -> tuple[JSON, dict[str, JSON]]:
    """Create ``manifest``, wait for its end, return (the pod as stored at the end, probe by container)."""
    kube.create_pod(namespace, manifest)
    name = manifest["metadata"]["name"]
    finished = wait_finished(kube, namespace, name)
    spec = manifest["spec"]
    names = [c["name"] for c in [*spec.get("initContainers", []), *spec["containers"]]]
    return finished, probes(plane, namespace, name, names)
