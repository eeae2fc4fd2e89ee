"""`irsa-webhook audit` as the e2e tests run it: the real command in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

AUDIT_TIMEOUT = 60.0


def run_audit(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m webhook audit --kubeconfig KUBECONFIG ARGS`; never a traceback, whatever it exits with."""
    result = subprocess.run(
        [sys.executable, "-m", "webhook", "audit", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=AUDIT_TIMEOUT,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def findings_of(result: subprocess.CompletedProcess[str]) -> dict[tuple[str, str], Any]:
    """The findings of a ``-o json`` run, by (namespace, pod)."""
    document = json.loads(result.stdout)
    return {(f["namespace"], f["pod"]): f for f in document["findings"]}
