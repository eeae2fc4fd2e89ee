"""Property tests of the mutation core over random pods (what is injected, and the patch).

Random containers and init containers with random env (the AWS names included), mounts (conflicts
included), volumes (a conflicting ``aws-iam-token`` included) and unknown fields at every level,
under random identities and settings. Whatever the input: only ``add`` operations, the patch applied
gives the result, a second pass adds nothing, the input is untouched, and every original field is
still there and equal: the only differences are appended volumes, env entries and mounts, never a
duplicate name. Derandomized so CI sees the same examples every run.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.decision import Decision
from webhook.identity import identity_from_annotations
from webhook.settings import DEFAULT_MOUNT_PATH, Settings

from ..helpers import check_mutation, decide_with

CONTAINER_FIELDS = ("initContainers", "containers")
AWS_VARS = (
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_STS_REGIONAL_ENDPOINTS",
)
INJECTED_VARS = frozenset(AWS_VARS)
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
        {"name": st.sampled_from((*AWS_VARS, "LOG_LEVEL", "PATH"))},
        optional={
            "value": short_text,
            "valueFrom": st.just({"fieldRef": {"fieldPath": "metadata.name"}}),
        },
    )
)
mounts = _with_unknown(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(("aws-iam-token", "data", "old-token")),
            "mountPath": st.sampled_from((DEFAULT_MOUNT_PATH, DEFAULT_MOUNT_PATH + "/", "/data", "/custom/path")),
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
        st.sampled_from(("aws-iam-token", "data", "cfg")),
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
                st.fixed_dictionaries({"name": st.just("p")}, optional={"annotations": pod_annotations})
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


def assert_only_appended(original: dict[str, Any], result: Decision) -> None:
    """The result is the original plus appended volumes, env entries and mounts, nothing else."""
    mutated = result.pod
    reduced = copy.deepcopy(mutated)
    spec, old_spec = reduced["spec"], original["spec"]

    new_volumes = _added(mutated["spec"], old_spec, "volumes")
    assert _names(new_volumes) in ([], ["aws-iam-token"])
    if new_volumes:
        assert "aws-iam-token" not in _names(old_spec.get("volumes"))
    _restore(spec, old_spec, "volumes")

    for field in CONTAINER_FIELDS:
        for index, old in enumerate(old_spec.get(field) or ()):
            new = mutated["spec"][field][index]
            added_env = _names(_added(new, old, "env"))
            added_mounts = _names(_added(new, old, "volumeMounts"))
            assert set(added_env) <= INJECTED_VARS
            assert len(set(added_env)) == len(added_env), f"duplicate env added: {added_env}"
            assert not set(added_env) & set(_names(old.get("env"))), "an existing variable was added again"
            assert added_mounts in ([], ["aws-iam-token"])
            if added_mounts:
                assert "aws-iam-token" not in _names(old.get("volumeMounts"))
            _restore(spec[field][index], old, "env")
            _restore(spec[field][index], old, "volumeMounts")

    assert reduced == original, "something other than volumes, env and mounts changed"


@PROPERTY_SETTINGS
@given(pod=pods, annotations=sa_annotations, config=mutation_settings)
def test_mutation_is_additive_idempotent_and_applies(
    pod: dict[str, Any], annotations: dict[str, str], config: Settings
) -> None:
    identity = identity_from_annotations("default", "app", annotations, config)
    original = copy.deepcopy(pod)

    result = check_mutation(pod, decide_with(identity, config))

    assert pod == original
    assert_only_appended(original, result)
    if not result.allowed:
        assert result.patch == []
        assert result.pod == original


@settings(PROPERTY_SETTINGS, max_examples=50)
@given(pod=pods, config=mutation_settings)
def test_no_role_arn_or_missing_account_is_a_no_op(pod: dict[str, Any], config: Settings) -> None:
    for identity in (None, identity_from_annotations("default", "app", {}, config)):
        result = check_mutation(pod, decide_with(identity, config))
        assert result.patch == []
        assert result.pod == pod
        assert result.allowed
