"""Cases and samples, and the invariants every mutation is checked against.

Every mutation is checked the same way wherever it comes from (the YAML cases, the property tests,
the upstream conformance corpus): only ``add`` operations, the patch applied to the input gives
exactly the computed pod, the input is untouched, and a second pass adds nothing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

from webhook.core.decide import Decision, decide
from webhook.core.pod import PodView, read_pod
from webhook.core.records import MAX_WARNING_CHARS, Identity
from webhook.core.settings import Settings

from .paths import SAMPLE

JSON_HEADERS = {"content-type": "application/json"}  # what an AdmissionReview is posted with


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_sample(path: Path = SAMPLE) -> Any:
    """A sample AdmissionReview (``tests/samples``) as a fresh dict."""
    return json.loads(path.read_bytes())


def review(uid: str, path: Path = SAMPLE) -> bytes:
    """The sample AdmissionReview with its own uid, so a request can be found in the server's log."""
    body = load_sample(path)
    body["request"]["uid"] = uid
    return json.dumps(body).encode()


def review_of(namespace: str, service_account: str, uid: str | None = None) -> Any:
    """The sample AdmissionReview with its pod moved to ``namespace`` and ``service_account`` (and,
    given, its own ``uid``), as a fresh dict."""
    body = load_sample()
    request = body["request"]
    if uid is not None:
        request["uid"] = uid
    request["namespace"] = namespace
    pod = request["object"]
    pod["metadata"]["namespace"] = namespace
    pod["spec"]["serviceAccountName"] = pod["spec"]["serviceAccount"] = service_account
    return body


def pod_request(pod: dict[str, Any], namespace: str = "default", settings: Settings | None = None) -> PodView:
    """The pod as the admission endpoint reads it from a review of ``pod`` in ``namespace``."""
    result = read_pod(pod, settings or Settings(), namespace)
    assert isinstance(result, PodView), result
    return result


def apply_patch(pod: Mapping[str, Any], patch: Sequence[Mapping[str, Any]]) -> Any:
    """Apply ``patch`` as kube-apiserver would: after a round trip through JSON, to a copy."""
    wire = json.loads(json.dumps(list(patch)))
    return jsonpatch.apply_patch(copy.deepcopy(pod), wire)


def check_mutation(
    pod: dict[str, Any],
    run: Callable[[dict[str, Any]], Decision],
) -> Decision:
    """Run ``run`` on ``pod`` and assert the patch invariants; returns the decision."""
    before = copy.deepcopy(pod)
    result = run(pod)
    assert pod == before, "the input pod was modified"
    for warning in result.warnings:
        assert len(warning.message) < 120, f"warning over 120 characters: {warning.message!r}"
        assert len(warning.message) <= MAX_WARNING_CHARS
    bad_ops = [op for op in result.patch if op.get("op") != "add"]
    assert not bad_ops, f"patch has operations other than add: {bad_ops}"
    assert apply_patch(pod, result.patch) == result.pod, "patch applied to the input differs from the result"
    if result.pod == pod:
        assert result.patch == [], "a no-op result carries a patch"

    again = run(copy.deepcopy(result.pod))
    assert again.patch == [], f"not idempotent: a second pass adds {again.patch}"
    assert again.pod == result.pod
    return result


def decide_with(
    identity: Identity | None, settings: Settings, namespace: str = "default"
) -> Callable[[dict[str, Any]], Decision]:
    def run(pod: dict[str, Any]) -> Decision:
        return decide(pod_request(pod, namespace, settings), identity, settings)

    return run
