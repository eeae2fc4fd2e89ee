"""The region pair [ours]: a container that sets one of ``AWS_DEFAULT_REGION`` and ``AWS_REGION`` gets
the other with the same definition, copied so that it shares nothing with the pod, and never from a
value too deep to encode. The case files (``tests/cases/mutation/region-*``) hold the rules on whole
pods; these tests hold what a case file cannot show: object identity, YAML output, hostile nesting."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import yaml

from webhook.core.inject import MAX_COPY_DEPTH, json_copy
from webhook.core.mutate import mutate
from webhook.core.pod import PodView, read_pod
from webhook.core.records import Identity
from webhook.core.settings import Settings

SETTINGS = Settings(aws_default_region="us-west-2")
IRSA = Identity("shop", "app", role_arn="arn:aws:iam::111122223333:role/app")


def mutated_env(entries: list[dict[str, Any]], settings: Settings = SETTINGS) -> tuple[list[dict[str, Any]], Any]:
    """The env of the one container after mutation, and the mutation's patch."""
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "env": entries}]}}
    view = read_pod(pod, settings, "shop")
    assert isinstance(view, PodView)
    result = mutate(view, IRSA, settings)
    return result.pod["spec"]["containers"][0]["env"], result.patch


def by_name(env: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in env if entry["name"] == name]


def nested(depth: int) -> Any:
    """A list ``depth`` levels deep (built without recursion)."""
    value: Any = "eu-west-1"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("present", "partner"), [("AWS_REGION", "AWS_DEFAULT_REGION"), ("AWS_DEFAULT_REGION", "AWS_REGION")]
)
def test_the_partner_has_the_containers_value_not_the_configured_one(present: str, partner: str) -> None:
    env, _ = mutated_env([{"name": present, "value": "ap-south-1"}])
    assert by_name(env, partner) == [{"name": partner, "value": "ap-south-1"}]
    assert by_name(env, present) == [{"name": present, "value": "ap-south-1"}]


def test_no_region_configured_still_completes_the_pair() -> None:
    env, _ = mutated_env([{"name": "AWS_REGION", "value": "eu-north-1"}], Settings())
    assert [e["name"] for e in env][:2] == ["AWS_REGION", "AWS_DEFAULT_REGION"]
    assert by_name(env, "AWS_DEFAULT_REGION") == [{"name": "AWS_DEFAULT_REGION", "value": "eu-north-1"}]


def test_value_from_and_unknown_fields_are_copied_and_share_nothing() -> None:
    source = {"configMapKeyRef": {"name": "aws", "key": "region"}}
    future = [{"a": 1}]
    original: dict[str, Any] = {"name": "AWS_REGION", "valueFrom": source, "xFuture": future}
    env, patch = mutated_env([original])
    (added,) = by_name(env, "AWS_DEFAULT_REGION")
    assert added == {"name": "AWS_DEFAULT_REGION", "valueFrom": source, "xFuture": [{"a": 1}]}
    assert added["valueFrom"] is not source
    assert added["valueFrom"]["configMapKeyRef"] is not source["configMapKeyRef"]
    assert added["xFuture"][0] is not future[0]
    # The patch carries the very entry appended to the pod (see webhook.core.mutate), and a printed
    # pod (`irsa-webhook mutate`) has no YAML anchors tying the two entries together.
    assert any(op["value"] is added for op in patch)
    assert "&id" not in yaml.safe_dump(env)


def test_a_value_too_deep_to_encode_adds_no_partner_and_no_configured_region() -> None:
    for depth in (MAX_COPY_DEPTH + 1, 300, 5000):  # 5000: past Python's recursion limit
        env, patch = mutated_env([{"name": "AWS_REGION", "value": nested(depth)}])
        assert [e["name"] for e in env] == ["AWS_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]
        orjson.dumps(patch)  # the server encodes the patch: no value of the pod's may break it


def test_a_value_at_the_depth_limit_is_copied() -> None:
    env, patch = mutated_env([{"name": "AWS_REGION", "value": nested(MAX_COPY_DEPTH)}])
    assert by_name(env, "AWS_DEFAULT_REGION") == [{"name": "AWS_DEFAULT_REGION", "value": nested(MAX_COPY_DEPTH)}]
    orjson.dumps(patch)


def test_json_copy() -> None:
    value = {"a": [1, {"b": None}], "c": "d"}
    copied = json_copy(value)
    assert copied == value
    assert copied is not value
    assert copied["a"] is not value["a"]
    assert copied["a"][1] is not value["a"][1]
    assert json_copy("x") == "x"
    assert json_copy(None) is None
    assert json_copy(nested(MAX_COPY_DEPTH)) == nested(MAX_COPY_DEPTH)
    assert json_copy(nested(MAX_COPY_DEPTH + 1)) is None
    assert json_copy({"k": nested(MAX_COPY_DEPTH)}) is None  # the map is one level too
