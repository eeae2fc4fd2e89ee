"""A real single-node Kubernetes cluster on this machine, without Docker (issue 20's harness).

The control plane of the e2e suite (etcd + kube-apiserver, :mod:`tests.support.controlplane`) plus
kube-controller-manager, kube-scheduler, kube-proxy and a kubelet on containerd + runc, with pods on a
Linux bridge (Debian's CNI plugins). Root is required (cgroups, mounts, network); everything started is
stopped by PID and every mount, cgroup, iptables chain and link it made is removed.

- ``pki``: the certificates the node's components authenticate with;
- ``network``: the bridge, the addresses and the CNI configuration;
- ``containerd``: its configuration (private root, state and socket) and the image import;
- ``components``: the argv and configuration of kubelet and the three control-plane controllers;
- ``sweep``: the clean-up that leaves nothing behind, and the check that nothing was left;
- ``cluster``: the whole node, one per machine, started and stopped as one.
"""
