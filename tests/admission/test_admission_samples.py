"""The admission layer over real AdmissionReview requests sent by kube-apiserver 1.36 (tests/samples)."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from tests.support import paths
from tests.support.asgi import example_endpoint
from tests.support.cases import load_sample
from webhook.admission.endpoint import MutateEndpoint
from webhook.core.marker import MARKER_ANNOTATION, Marker, read_marker
from webhook.core.settings import Settings
from webhook.sources.manifests import load_manifests
from webhook.sources.resolver import Resolver
from webhook.sources.store import IdentityStore

SAMPLES = sorted(paths.SAMPLES.glob("*.json"))
SETTINGS = Settings(aws_default_region="us-west-2")


def endpoint(settings: Settings = SETTINGS) -> MutateEndpoint:
    return example_endpoint(settings)


def answer(review: dict[str, Any], ep: MutateEndpoint | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    fields: dict[str, Any] = {}
    status, body = asyncio.run((ep or endpoint()).review(json.dumps(review).encode(), fields))
    assert status == 200
    return json.loads(body), fields


def patched(review: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    patch = json.loads(base64.b64decode(response["response"]["patch"]))
    assert {op["op"] for op in patch} == {"add"}
    result: dict[str, Any] = jsonpatch.apply_patch(review["request"]["object"], patch)
    return result


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_samples_are_present() -> None:
    assert len(SAMPLES) == 4


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_sample_is_mutated_and_echoed(path: Path) -> None:
    review = json.loads(path.read_text())
    original = copy.deepcopy(review)
    response, fields = answer(review)
    assert response["apiVersion"] == review["apiVersion"]
    assert response["kind"] == "AdmissionReview"
    assert response["response"]["uid"] == review["request"]["uid"]
    assert response["response"]["allowed"] is True
    assert response["response"]["patchType"] == "JSONPatch"
    assert fields["decision"] == "mutated"
    pod = patched(review, response)
    assert review == original  # the request is never modified
    assert any(v["name"] == "aws-iam-token" for v in pod["spec"]["volumes"])
    # Everything the pod had is still there, unchanged, except lists that grew and the marker added.
    annotations = dict(pod["metadata"].get("annotations") or {})
    assert read_marker(pod) is not None
    del annotations[MARKER_ANNOTATION]
    for key, value in review["request"]["object"]["metadata"].items():
        assert (annotations if key == "annotations" else pod["metadata"][key]) == value
    # A second admission of the mutated pod (reinvocation) changes nothing.
    again = copy.deepcopy(review)
    again["request"]["object"] = pod
    second, _ = answer(again)
    assert "patch" not in second["response"]
    assert "patchType" not in second["response"]


def test_rich_sample_details() -> None:
    review = load_sample(paths.SAMPLES / "admissionreview-pod-rich.json")
    response, fields = answer(review)
    assert fields["namespace"] == "shop"
    assert fields["service_account"] == "checkout"
    pod = patched(review, response)
    containers = {c["name"]: c for c in pod["spec"]["initContainers"] + pod["spec"]["containers"]}
    role = "arn:aws:iam::111122223333:role/shop/checkout"
    token = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
    for name in ("migrate", "log-shipper", "app"):
        env = env_of(containers[name])
        assert env["AWS_ROLE_ARN"] == role
        assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == token
        assert env["AWS_STS_REGIONAL_ENDPOINTS"] == "regional"
        mounts = [m for m in containers[name]["volumeMounts"] if m["name"] == "aws-iam-token"]
        assert mounts == [{"name": "aws-iam-token", "mountPath": token.rsplit("/", 1)[0], "readOnly": True}]
    assert read_marker(pod) == Marker(("migrate", "log-shipper", "app"), "serviceaccount")
    # app already sets AWS_REGION: its own value survives and AWS_DEFAULT_REGION gets it, not us-west-2
    app_env = [e["name"] for e in containers["app"]["env"]]
    assert app_env.count("AWS_REGION") == app_env.count("AWS_DEFAULT_REGION") == 1
    assert env_of(containers["app"])["AWS_DEFAULT_REGION"] == env_of(containers["app"])["AWS_REGION"] == "eu-west-1"
    assert env_of(containers["log-shipper"])["AWS_DEFAULT_REGION"] == "us-west-2"
    # the native sidecar keeps its restartPolicy; skip-containers leaves metrics-exporter alone
    assert containers["log-shipper"]["restartPolicy"] == "Always"
    original = {c["name"]: c for c in review["request"]["object"]["spec"]["containers"]}
    assert containers["metrics-exporter"] == original["metrics-exporter"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "aws-iam-token")
    assert volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 7200


def test_generate_name_pod_is_logged_by_generate_name() -> None:
    review = load_sample(paths.SAMPLES / "admissionreview-pod-generatename.json")
    _, fields = answer(review)
    assert fields["pod"] == review["request"]["object"]["metadata"]["generateName"]


def test_dry_run_is_mutated_like_a_real_request() -> None:
    review = load_sample(paths.SAMPLES / "admissionreview-pod-dryrun.json")
    assert review["request"]["dryRun"] is True
    response, fields = answer(review)
    assert fields["dry_run"] is True
    assert response["response"]["patch"]


def test_v1beta1_is_answered_as_v1beta1() -> None:
    review = json.loads(SAMPLES[0].read_text())
    review["apiVersion"] = "admission.k8s.io/v1beta1"
    response, _ = answer(review)
    assert response["apiVersion"] == "admission.k8s.io/v1beta1"
    assert response["response"]["uid"] == review["request"]["uid"]


@pytest.mark.parametrize(
    ("change", "decision"),
    [
        pytest.param({"operation": "UPDATE"}, "ignored", id="update"),
        pytest.param({"operation": "DELETE"}, "ignored", id="delete"),
        pytest.param({"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}}, "ignored", id="not-a-pod"),
        pytest.param({"subResource": "ephemeralcontainers", "operation": "UPDATE"}, "ignored", id="subresource"),
    ],
)
def test_only_pod_create_is_mutated(change: dict[str, Any], decision: str) -> None:
    review = json.loads(SAMPLES[0].read_text())
    review["request"].update(change)
    response, fields = answer(review)
    assert fields["decision"] == decision
    assert response["response"] == {"uid": review["request"]["uid"], "allowed": True}


@pytest.mark.parametrize(
    "obj", [pytest.param(None, id="missing"), pytest.param([1], id="list"), pytest.param("pod", id="string")]
)
def test_pod_create_without_object_is_refused_with_400(obj: Any) -> None:
    review = json.loads(SAMPLES[0].read_text())
    if obj is None:
        del review["request"]["object"]
    else:
        review["request"]["object"] = obj
    response, _ = answer(review)
    assert response["response"]["allowed"] is False
    assert response["response"]["status"]["code"] == 400
    assert "object" in response["response"]["status"]["message"]


def test_unknown_service_account_is_admitted_with_a_warning() -> None:
    review = json.loads(SAMPLES[0].read_text())
    review["request"]["object"]["spec"]["serviceAccountName"] = "nobody"
    response, fields = answer(review)
    assert response["response"]["allowed"] is True
    assert "patch" not in response["response"]
    assert response["response"]["warnings"] == [
        "serviceaccount webhook-demo/nobody not found; no AWS credentials injected"
    ]
    assert fields["decision"] == "service-account-not-found"


def test_strict_mode_denies_configuration_problems(tmp_path: Path) -> None:
    manifest = tmp_path / "sa.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n  namespace: webhook-demo\n"
        "  annotations:\n    eks.amazonaws.com/role-arn: not-an-arn\n"
    )
    settings = Settings(strict=True)
    store = IdentityStore()
    store.replace_all(load_manifests([manifest], settings))
    response, fields = answer(json.loads(SAMPLES[0].read_text()), MutateEndpoint(Resolver(store), settings))
    assert response["response"]["allowed"] is False
    assert "not-an-arn" in response["response"]["status"]["message"]
    assert "patch" not in response["response"]
    assert fields["decision"] == "denied-strict"
    # Without --strict the same pod is admitted, mutated, with the warning.
    store2 = IdentityStore()
    store2.replace_all(load_manifests([manifest], Settings()))
    lenient, _ = answer(json.loads(SAMPLES[0].read_text()), MutateEndpoint(Resolver(store2), Settings()))
    assert lenient["response"]["allowed"] is True
    assert lenient["response"]["patch"]
    assert len(lenient["response"]["warnings"]) == 1
