"""How the node's Kubernetes components are run: the kubelet's configuration, and the argv of the
kubelet, kube-controller-manager, kube-scheduler and kube-proxy (all v1.36, built from the same
``k8s.io/kubernetes`` module as the e2e suite's kube-apiserver, by tests/node/build.sh).

The controllers and kube-proxy authenticate with the control plane's admin kubeconfig: on a
throwaway single-node cluster their own identities would prove nothing the webhook depends on. The
kubelet does have its own (``O=system:nodes``), because the Node authorizer and NodeRestriction decide
which tokens it may request, which is what issues every projected token the webhook asks for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .network import POD_CIDR

NODE_NAME = "irsa-node"


def kubeconfig(server: str, ca: Path, user: Mapping[str, str], name: str = "irsa-node") -> str:
    """A kubeconfig (JSON is YAML) for ``server`` trusting ``ca``, with ``user`` as its credentials
    (``{"token": ...}`` or ``{"client-certificate": ..., "client-key": ...}``)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca)}}],
            "users": [{"name": name, "user": dict(user)}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        },
        indent=2,
    )


@dataclass(frozen=True)
class KubeletSettings:
    address: str
    port: int
    healthz_port: int
    client_ca: Path  # who may call the kubelet's API (kube-apiserver's kubelet client certificate)
    tls_cert: Path
    tls_key: Path
    runtime_endpoint: str
    pod_logs: Path


def kubelet_config(settings: KubeletSettings) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": settings.address,
        "port": settings.port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": settings.healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(settings.client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(settings.tls_cert),
        "tlsPrivateKeyFile": str(settings.tls_key),
        "containerRuntimeEndpoint": settings.runtime_endpoint,
        # The machines this runs on have cgroup v1 and no systemd as init: kubelet 1.36 refuses v1
        # unless told, and only the cgroupfs driver works without systemd.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        # The images are imported, never pulled: a collected image could not come back.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # A developer's disk is often fuller than a node's defaults allow (10% free): evicting the
        # test pods for it would be a false failure.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "podLogsDir": str(settings.pod_logs),
        "serializeImagePulls": False,
        "resolvConf": "/etc/resolv.conf",
        "rotateCertificates": False,
    }


def kubelet_argv(binary: Path, config: Path, kubeconfig_file: Path, root_dir: Path, node_ip: str) -> list[str]:
    return [
        str(binary),
        f"--config={config}",
        f"--kubeconfig={kubeconfig_file}",
        f"--root-dir={root_dir}",
        f"--node-ip={node_ip}",
        f"--hostname-override={NODE_NAME}",
        "--v=1",
    ]


def controller_manager_argv(binary: Path, kubeconfig_file: Path, root_ca: Path, sa_key: Path) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig_file}",
        "--leader-elect=false",
        # Published into every namespace as kube-root-ca.crt, which every pod's kube-api-access volume
        # projects: without it no pod starts.
        f"--root-ca-file={root_ca}",
        f"--service-account-private-key-file={sa_key}",
        "--use-service-account-credentials=false",
        "--cluster-name=irsa-node",
        "--secure-port=0",
        "--v=1",
    ]


def scheduler_argv(binary: Path, kubeconfig_file: Path) -> list[str]:
    return [str(binary), f"--kubeconfig={kubeconfig_file}", "--leader-elect=false", "--secure-port=0", "--v=1"]


def proxy_argv(binary: Path, kubeconfig_file: Path, healthz_port: int, metrics_port: int) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig_file}",
        f"--hostname-override={NODE_NAME}",
        "--proxy-mode=iptables",
        f"--cluster-cidr={POD_CIDR}",
        # 0: leave the host's conntrack limits and timeouts as they are (no sysctl written).
        "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0",
        # NodePorts on 127.0.0.1 would need route_localnet on every interface: not needed here.
        "--iptables-localhost-nodeports=false",
        f"--healthz-bind-address=127.0.0.1:{healthz_port}",
        f"--metrics-bind-address=127.0.0.1:{metrics_port}",
        "--v=1",
    ]


def proxy_cleanup_argv(binary: Path) -> list[str]:
    return [str(binary), "--cleanup", "--proxy-mode=iptables"]
