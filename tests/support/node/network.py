"""The node's network: one Linux bridge on the host, the pods' subnet behind it, Debian's CNI plugins.

The bridge's own address is the node's address: kube-apiserver, the kubelet and the AWS stand-ins
listen there, so pods reach them directly (it is their default gateway) and nothing leaves the machine:
no masquerade, no forwarding to eth0, no port mapping. Services work through kube-proxy's iptables
rules on the host (a pod's packet to a ClusterIP is routed to the host and translated there).

The EKS Pod Identity agent's link-local address (169.254.170.23) sits on the bridge as well, so its
stand-in answers at the address a real node's agent uses.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "irsa0"
POD_CIDR = "10.201.0.0/16"
NODE_ADDRESS = "10.201.0.1"
# host-local hands out pod addresses from here on, away from the node's and the stand-ins' addresses.
POD_RANGE_START = "10.201.1.1"
SERVICE_CIDR = "10.96.0.0/24"
KUBERNETES_SERVICE_IP = "10.96.0.1"  # the first address of the range: the kubernetes Service
AGENT_ADDRESS = "169.254.170.23"
NETWORK_NAME = "irsa-node"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def link_exists(name: str = BRIDGE) -> bool:
    return _ip("link", "show", name, check=False).returncode == 0


@dataclass
class NodeNetwork:
    """The bridge and the CNI configuration of a node whose files live in ``work``."""

    work: Path

    @property
    def conf_dir(self) -> Path:
        return self.work / "cni" / "net.d"

    @property
    def ipam_dir(self) -> Path:
        # host-local keeps its leases here instead of /var/lib/cni: removed with the node's folder.
        return self.work / "cni" / "ipam"

    def create(self) -> None:
        if link_exists():
            raise RuntimeError(f"a link named {BRIDGE} exists already: another local node runs, or one was left over")
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{NODE_ADDRESS}/{POD_CIDR.split('/')[1]}", "dev", BRIDGE)
        _ip("addr", "add", f"{AGENT_ADDRESS}/32", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.ipam_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "10-irsa-node.conflist").write_text(json.dumps(self.conflist(), indent=2) + "\n")

    def conflist(self) -> dict[str, object]:
        return {
            "cniVersion": "1.0.0",
            "name": NETWORK_NAME,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    # A pod reaching itself through a Service (the webhook's own probes) needs hairpin.
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR, "rangeStart": POD_RANGE_START, "gateway": NODE_ADDRESS}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.ipam_dir),
                    },
                }
            ],
        }

    @staticmethod
    def delete() -> None:
        """Remove the bridge (and with it both addresses); nothing if it is gone already."""
        if link_exists():
            _ip("link", "del", BRIDGE)
