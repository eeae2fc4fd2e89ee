"""Where things are in the repository."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
SAMPLES = TESTS / "samples"
SAMPLE = SAMPLES / "admissionreview-pod.json"  # a pod of ServiceAccount webhook-demo/app
CASES = TESTS / "cases"
EXAMPLES = REPO / "examples"
EXAMPLE_ACCOUNTS = EXAMPLES / "service-accounts.yaml"
MANIFESTS = REPO / "manifests"
