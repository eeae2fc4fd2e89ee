"""The admission marker (``irsa-webhook.io/injected``): what the webhook wrote, recorded on the pod.

The YAML mutation cases show it on every mutated pod; these tests cover the ways it is written
(no metadata, no annotations, reinvocation) and the values it must never trust.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import pytest

from webhook.core.marker import MARKER_ANNOTATION, Marker, marker_value, read_marker
from webhook.core.mutate import mutate
from webhook.core.outcomes import ALREADY_MUTATED, MUTATED
from webhook.core.pod import PodView, read_pod
from webhook.core.records import CONTAINER_CREDENTIALS, Identity
from webhook.core.settings import Settings

SETTINGS = Settings()
IRSA = Identity("shop", "app", role_arn="arn:aws:iam::111122223333:role/app")
ROLE_ENV = [
    {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::444455556666:role/cross-account"},
    {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"},
]


def view(pod: dict[str, Any]) -> PodView:
    result = read_pod(pod, SETTINGS, "shop")
    assert isinstance(result, PodView)
    return result


def admit(pod: dict[str, Any], identity: Identity = IRSA) -> dict[str, Any]:
    """The pod as stored after the patch is applied; the patch must apply to the input as sent."""
    before = copy.deepcopy(pod)
    result = mutate(view(pod), identity, SETTINGS)
    assert pod == before, "the input pod was modified"
    patched: dict[str, Any] = jsonpatch.apply_patch(pod, result.patch)
    assert patched == result.pod
    return patched


def test_the_marker_names_the_containers_given_the_pair_and_not_those_that_set_their_own() -> None:
    pod = {
        "metadata": {"name": "p", "annotations": {"team": "shop"}},
        "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "app"}, {"name": "cross", "env": ROLE_ENV}],
        },
    }
    stored = admit(pod)
    assert read_marker(stored) == Marker(("init", "app"), "serviceaccount")
    assert stored["metadata"]["annotations"]["team"] == "shop"


@pytest.mark.parametrize(
    "metadata",
    [None, {"name": "p"}, {"name": "p", "annotations": None}, {"name": "p", "labels": {"a": "b"}}],
    ids=["no-metadata", "no-annotations", "null-annotations", "labels-only"],
)
def test_the_marker_is_added_however_little_metadata_the_pod_has(metadata: dict[str, Any] | None) -> None:
    pod: dict[str, Any] = {"spec": {"containers": [{"name": "app"}]}}
    if metadata is not None:
        pod["metadata"] = metadata
    assert read_marker(admit(pod)) == Marker(("app",), "serviceaccount")


def test_pod_identity_pods_are_marked_after_their_label() -> None:
    identity = Identity("shop", "app", mode=CONTAINER_CREDENTIALS, source="pod-identity")
    for metadata in (None, {"name": "p"}):
        pod: dict[str, Any] = {"spec": {"containers": [{"name": "app"}]}}
        if metadata is not None:
            pod["metadata"] = metadata
        stored = admit(pod, identity)
        assert read_marker(stored) == Marker(("app",), "pod-identity")
        assert stored["metadata"]["labels"] == {"eks.amazonaws.com/pod-identity": "enabled"}


def test_reinvocation_adds_the_new_container_to_the_marker() -> None:
    stored = admit({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]}})
    # A later webhook adds a sidecar; kube-apiserver calls us again with the pod as it is now.
    stored["spec"]["containers"].append({"name": "sidecar"})
    again = admit(stored)
    assert read_marker(again) == Marker(("app", "sidecar"), "serviceaccount")
    # A third call has nothing to add, so no patch at all: the marker is not rewritten for nothing.
    third = mutate(view(again), IRSA, SETTINGS)
    assert (third.decision, third.patch) == (ALREADY_MUTATED, [])


def test_a_pod_that_only_needs_a_mount_keeps_its_marker_unchanged() -> None:
    stored = admit({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]}})
    manual = {"name": "manual", "env": ROLE_ENV}
    stored["spec"]["containers"].append(manual)
    result = mutate(view(stored), IRSA, SETTINGS)
    assert result.decision == MUTATED  # the mount is added to "manual", its env is its own
    assert not [op for op in result.patch if op["path"].startswith("/metadata")]
    assert read_marker(result.pod) == Marker(("app",), "serviceaccount")


@pytest.mark.parametrize(
    "raw",
    ["not json", "[]", '{"containers": "app"}', '{"containers": [1]}', "{" * 20_000],
    ids=["text", "list", "string-containers", "number-container", "huge"],
)
def test_a_marker_that_is_not_ours_is_never_trusted_and_is_replaced(raw: str) -> None:
    pod = {"metadata": {"name": "p", "annotations": {MARKER_ANNOTATION: raw}}, "spec": {"containers": [{"name": "a"}]}}
    assert read_marker(pod) is None
    assert read_marker(admit(pod)) == Marker(("a",), "serviceaccount")


def test_marker_values_are_stable_strings() -> None:
    assert marker_value(["app"], "configmap") == '{"containers":["app"],"source":"configmap"}'
    assert read_marker({"metadata": {"annotations": {MARKER_ANNOTATION: marker_value([], "x")}}}) == Marker((), "x")


@pytest.mark.parametrize(
    "names",
    [[], ["app"], ["init", "app", "#2"], [f"c{i}" for i in range(9)], ['we"ird', "ü", "back\\slash"]],
    ids=["none", "one", "three", "many-uncached", "escaped"],
)
def test_marker_values_are_the_json_of_the_record(names: list[str]) -> None:
    # The fast paths (plain names concatenated, cached when few) must give exactly what json gives.
    value = marker_value(names, "serviceaccount")
    assert value == json.dumps({"containers": names, "source": "serviceaccount"}, separators=(",", ":"), sort_keys=True)
    assert read_marker({"metadata": {"annotations": {MARKER_ANNOTATION: value}}}) == Marker(
        tuple(names), "serviceaccount"
    )
