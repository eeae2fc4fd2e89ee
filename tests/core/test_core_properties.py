"""Property tests of the mutation core over random pods (what is injected, and the patch).

Random containers and init containers with random env (the AWS names included), mounts (conflicts
included), volumes (a conflicting ``aws-iam-token`` included) and unknown fields at every level,
under random identities (IRSA and EKS Pod Identity) and settings. Whatever the input: only ``add``
operations, the patch applied gives the result, a second pass adds nothing, the input is untouched,
and every original field is still there and equal: the only differences are appended volumes, env
entries and mounts of the identity's mode (and, for Pod Identity, the pod-identity label when it was
absent), never a duplicate name. Derandomized so CI sees the same examples every run.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.cases import check_mutation, decide_with, pod_request
from webhook.core.annotations import identity_from_annotations
from webhook.core.decide import Decision, decide
from webhook.core.marker import MARKER_ANNOTATION, read_marker
from webhook.core.mutate import (
    CONTAINER_CREDENTIAL_VARS,
    CREDENTIAL_VARS,
    JITTER_MIN,
    JITTERED_EXPIRATION,
    POD_IDENTITY_LABEL,
)
from webhook.core.records import CONTAINER_CREDENTIALS, STS_WEB_IDENTITY, Identity
from webhook.core.settings import DEFAULT_CC_MOUNT_PATH, DEFAULT_CC_VOLUME_NAME, DEFAULT_MOUNT_PATH, Settings

CONTAINER_FIELDS = ("initContainers", "containers")
AWS_VARS = (
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_STS_REGIONAL_ENDPOINTS",
)
CC_VARS = ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
# What each mode may append: env names and the token volume (and mount) name.
INJECTED_VARS = {
    STS_WEB_IDENTITY: frozenset(AWS_VARS),
    CONTAINER_CREDENTIALS: frozenset({*AWS_VARS[2:], *CC_VARS}),
}
CREDENTIAL_PAIR = {STS_WEB_IDENTITY: CREDENTIAL_VARS[0], CONTAINER_CREDENTIALS: CONTAINER_CREDENTIAL_VARS[0]}
TOKEN_VOLUMES = {STS_WEB_IDENTITY: "aws-iam-token", CONTAINER_CREDENTIALS: DEFAULT_CC_VOLUME_NAME}
PREFIX = "eks.amazonaws.com"

short_text = st.text(alphabet="ab-", max_size=3)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | short_text,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(short_text, inner, max_size=2),
    max_leaves=4,
)
# Invented future fields; their names never collide with ones the webhook reads or writes.
unknown_fields = st.dictionaries(st.sampled_from(("xFuture", "xNew", "xAlpha")), json_values, max_size=2)


def _with_unknown(base: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda known, extra: {**extra, **known}, base, unknown_fields)


env_entries = _with_unknown(
    st.fixed_dictionaries(
        {"name": st.sampled_from((*AWS_VARS, *CC_VARS, "LOG_LEVEL", "PATH"))},
        optional={
            "value": short_text,
            "valueFrom": st.just({"fieldRef": {"fieldPath": "metadata.name"}}),
        },
    )
)
mounts = _with_unknown(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(("aws-iam-token", DEFAULT_CC_VOLUME_NAME, "data", "old-token")),
            "mountPath": st.sampled_from(
                (DEFAULT_MOUNT_PATH, DEFAULT_MOUNT_PATH + "/", DEFAULT_CC_MOUNT_PATH, "/data", "/custom/path")
            ),
        },
        optional={"readOnly": st.booleans()},
    )
)
containers = _with_unknown(
    st.fixed_dictionaries(
        {"name": st.sampled_from(("web", "sidecar", "init", "proxy", "metrics")), "image": st.just("img")},
        optional={
            "env": st.none() | st.lists(env_entries, max_size=4),
            "volumeMounts": st.none() | st.lists(mounts, max_size=3),
            "restartPolicy": st.just("Always"),
            "readinessProbe": st.just({"grpc": {"port": 5000}}),
            "resizePolicy": st.just([{"resourceName": "cpu", "restartPolicy": "NotRequired"}]),
        },
    )
)
token_volume = st.builds(
    lambda exp: {"projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": exp, "path": "token"}}]}},
    st.sampled_from((600, 3600)),
)
volume_sources = st.sampled_from(({"emptyDir": {}}, {"hostPath": {"path": "/t"}}, {"configMap": {"name": "c"}}))
volumes = _with_unknown(
    st.builds(
        lambda name, source: {"name": name, **source},
        st.sampled_from(("aws-iam-token", DEFAULT_CC_VOLUME_NAME, "data", "cfg")),
        token_volume | volume_sources,
    )
)
pod_annotations = st.fixed_dictionaries(
    {},
    optional={
        f"{PREFIX}/skip-containers": st.lists(st.sampled_from(("web", " init ", "ghost", "")), max_size=3).map(
            ",".join
        ),
        f"{PREFIX}/token-expiration": st.sampled_from(("3600", "0", "abc", "99999999999")),
        "other/annotation": short_text,
    },
)
pod_labels = st.none() | st.dictionaries(
    st.sampled_from((POD_IDENTITY_LABEL, "app", "eks.amazonaws.com/other")), st.sampled_from(("enabled", "x"))
)
pod_specs = _with_unknown(
    st.fixed_dictionaries(
        {"serviceAccountName": st.just("app"), "containers": st.lists(containers, max_size=3)},
        optional={
            "initContainers": st.lists(containers, max_size=2),
            "ephemeralContainers": st.lists(containers, max_size=1),
            "volumes": st.none() | st.lists(volumes, max_size=3),
            "nodeSelector": st.sampled_from(({"kubernetes.io/os": "windows"}, {"kubernetes.io/os": "linux"})),
            "os": st.just({"name": "windows"}),
        },
    )
)
pods = _with_unknown(
    st.fixed_dictionaries(
        {
            "apiVersion": st.just("v1"),
            "kind": st.just("Pod"),
            "metadata": _with_unknown(
                st.fixed_dictionaries(
                    {"name": st.just("p")}, optional={"annotations": pod_annotations, "labels": pod_labels}
                )
            ),
            "spec": pod_specs,
        }
    )
)
sa_annotations = st.fixed_dictionaries(
    {
        f"{PREFIX}/role-arn": st.sampled_from(
            ("arn:aws:iam::111122223333:role/app", "arn:aws-cn:iam::111122223333:role/a/b", "not-an-arn", "")
        )
    },
    optional={
        f"{PREFIX}/audience": st.sampled_from(("", "vault")),
        f"{PREFIX}/sts-regional-endpoints": st.sampled_from(("true", "0", "maybe")),
        f"{PREFIX}/token-expiration": st.sampled_from(("7200", "10", "x")),
    },
)
mutation_settings = st.builds(
    Settings,
    aws_default_region=st.sampled_from(("", "eu-west-1")),
    sts_regional_endpoint=st.booleans(),
    token_mount_path=st.sampled_from((DEFAULT_MOUNT_PATH, "/custom/path/")),
    strict=st.booleans(),
)

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _restore(new_parent: dict[str, Any], old_parent: dict[str, Any], key: str) -> None:
    """Cut a list that may only have grown at its end back to what it was (absent, null or a prefix)."""
    if key not in old_parent:
        new_parent.pop(key, None)
    elif not isinstance(old_parent[key], list):
        new_parent[key] = old_parent[key]
    else:
        new_parent[key] = new_parent[key][: len(old_parent[key])]


def _added(new_parent: dict[str, Any], old_parent: dict[str, Any], key: str) -> list[Any]:
    old = old_parent.get(key)
    new = new_parent.get(key)
    if not isinstance(new, list):
        return []
    return new[len(old) :] if isinstance(old, list) else new


def _names(items: Any) -> list[Any]:
    return [item.get("name") for item in items or () if isinstance(item, dict)]


def assert_only_appended(original: dict[str, Any], result: Decision, mode: str = STS_WEB_IDENTITY) -> None:
    """The result is the original plus appended volumes, env entries and mounts of ``mode`` (and the
    Pod Identity label), nothing else."""
    mutated = result.pod
    reduced = copy.deepcopy(mutated)
    spec, old_spec = reduced["spec"], original["spec"]
    volume_name, allowed_env = TOKEN_VOLUMES[mode], INJECTED_VARS[mode]

    new_volumes = _added(mutated["spec"], old_spec, "volumes")
    assert _names(new_volumes) in ([], [volume_name])
    if new_volumes:
        assert volume_name not in _names(old_spec.get("volumes"))
    _restore(spec, old_spec, "volumes")

    paired: list[Any] = []  # containers given the credential pair: what the marker must name
    for field in CONTAINER_FIELDS:
        for index, old in enumerate(old_spec.get(field) or ()):
            new = mutated["spec"][field][index]
            added_env = _names(_added(new, old, "env"))
            if CREDENTIAL_PAIR[mode] in added_env:
                paired.append(new.get("name") if isinstance(new.get("name"), str) else f"#{index}")
            added_mounts = _names(_added(new, old, "volumeMounts"))
            assert set(added_env) <= allowed_env, added_env
            assert len(set(added_env)) == len(added_env), f"duplicate env added: {added_env}"
            assert not set(added_env) & set(_names(old.get("env"))), "an existing variable was added again"
            assert added_mounts in ([], [volume_name])
            if added_mounts:
                assert volume_name not in _names(old.get("volumeMounts"))
            _restore(spec[field][index], old, "env")
            _restore(spec[field][index], old, "volumeMounts")

    old_labels = original["metadata"].get("labels")
    new_labels = mutated["metadata"].get("labels")
    if mode == CONTAINER_CREDENTIALS and result.allowed:
        # Added when absent, never changed when present (whatever its value).
        if isinstance(old_labels, dict) and POD_IDENTITY_LABEL in old_labels:
            assert new_labels == old_labels
        else:
            assert new_labels == {**(old_labels or {}), POD_IDENTITY_LABEL: "enabled"}
        _restore_labels(reduced["metadata"], original["metadata"])
    if result.patch:
        # The admission marker: exactly the containers given the pair, the rest of the map as it was.
        marker = read_marker(mutated)
        assert marker is not None, "a mutated pod carries no admission marker"
        assert list(marker.containers) == paired
        old_annotations = original["metadata"].get("annotations")
        annotations = dict(mutated["metadata"]["annotations"])
        del annotations[MARKER_ANNOTATION]
        assert annotations == (old_annotations or {})
        if old_annotations is None:
            del reduced["metadata"]["annotations"]
        else:
            reduced["metadata"]["annotations"] = copy.deepcopy(old_annotations)
    assert reduced == original, "something other than volumes, env, mounts, the label and the marker changed"


def assert_region_pair_whole(original: dict[str, Any], mutated: dict[str, Any]) -> None:
    """Every container the mutation changed that did not set both region variables itself ends with
    neither, or with both defined alike (the last definition of each, name aside): none is left with
    one name only [ours]."""
    for field in CONTAINER_FIELDS:
        for index, old in enumerate(original["spec"].get(field) or ()):
            new = mutated["spec"][field][index]
            if new == old:
                continue  # left alone: skipped, a mount conflict, or upstream's fully-configured exception
            if {"AWS_REGION", "AWS_DEFAULT_REGION"} <= set(_names(old.get("env"))):
                continue  # both set by the pod, maybe differently: its choice, untouched
            last = {entry["name"]: entry for entry in new.get("env") or ()}
            region, default_region = last.get("AWS_REGION"), last.get("AWS_DEFAULT_REGION")
            assert (region is None) == (default_region is None), f"{field}[{index}]: one region variable only"
            if region is not None and default_region is not None:
                assert {**region, "name": ""} == {**default_region, "name": ""}, f"{field}[{index}]"


def _restore_labels(new_meta: dict[str, Any], old_meta: dict[str, Any]) -> None:
    if "labels" in old_meta:
        new_meta["labels"] = copy.deepcopy(old_meta["labels"])
    else:
        new_meta.pop("labels", None)


def _in_mode(identity: Identity, mode: str) -> Identity:
    """``identity`` as the chain hands it over when the Pod Identity file lists its ServiceAccount."""
    if mode == CONTAINER_CREDENTIALS:
        return dataclasses.replace(identity, mode=mode, source="pod-identity")
    return identity


def _lowest(low: int, high: int) -> int:
    assert (low, high) == (JITTER_MIN, JITTERED_EXPIRATION)
    return low


@PROPERTY_SETTINGS
@given(
    pod=pods,
    annotations=sa_annotations,
    config=mutation_settings,
    mode=st.sampled_from((STS_WEB_IDENTITY, CONTAINER_CREDENTIALS)),
)
def test_mutation_is_additive_idempotent_and_applies(
    pod: dict[str, Any], annotations: dict[str, str], config: Settings, mode: str
) -> None:
    identity = _in_mode(identity_from_annotations("default", "app", annotations, config), mode)
    original = copy.deepcopy(pod)

    result = check_mutation(pod, lambda p: decide(pod_request(p, settings=config), identity, config, _lowest))

    assert pod == original
    assert_only_appended(original, result, mode)
    assert_region_pair_whole(original, result.pod)
    if not result.allowed:
        assert result.patch == []
        assert result.pod == original
    if mode == CONTAINER_CREDENTIALS:
        # Whatever the ServiceAccount says (an empty role-arn included), a listed pod is served.
        assert result.decision != "no-role-arn"
        assert result.role_arn == ""


@settings(PROPERTY_SETTINGS, max_examples=50)
@given(pod=pods, config=mutation_settings)
def test_no_role_arn_or_missing_account_is_a_no_op(pod: dict[str, Any], config: Settings) -> None:
    for identity in (None, identity_from_annotations("default", "app", {}, config)):
        result = check_mutation(pod, decide_with(identity, config))
        assert result.patch == []
        assert result.pod == pod
        assert result.allowed
