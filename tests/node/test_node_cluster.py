"""`python -m tests.cluster up|status|down` (`make cluster`, `make cluster-down`) as a user runs them:
up starts the local cluster, proves a pod obtains AWS credentials by printing the assumed role's ARN,
and leaves it running past its own exit; status sees it; down stops it and nothing is left behind.

It starts the one node a machine may run, in .cache/cluster: it runs alone, never while another node
(a user's cluster, the node tests' own) runs.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.moto import ACCOUNT
from tests.support.node import cluster as node
from tests.support.paths import REPO

pytestmark = [pytest.mark.node, pytest.mark.timeout(900)]

# The demo pod's `aws sts get-caller-identity` answer, as `up` prints it: the demo role's session.
ARN_LINE = re.compile(rf"It answered \(the assumed role's ARN\): arn:aws:sts::{ACCOUNT}:assumed-role/irsa-demo/\S+")


def entry(action: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.cluster", action],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_up_status_down() -> None:
    reason = node.unavailable()
    if reason is not None:
        pytest.skip(reason)
    if node.running() is not None:
        pytest.skip("node: one runs already on this machine (a user's `make cluster`?): one node per machine")
    up = entry("up", 600)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert ARN_LINE.search(up.stdout), up.stdout
        assert "export KUBECONFIG=" in up.stdout
        # up has exited: what it started runs on.
        status = entry("status", 60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "a local cluster runs" in status.stdout
        assert "verifying-sts" in status.stdout
        assert "kubelet" in status.stdout
    finally:
        down = entry("down", 180)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "nothing left behind" in down.stdout
    after = entry("status", 60)
    assert after.returncode == 1
    assert "no local cluster runs" in after.stdout
