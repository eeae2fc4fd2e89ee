"""Hostile but well-formed AdmissionReviews: never a 500, always one log line.

kube-apiserver only sends pods it has decoded into typed objects, but anyone who can reach the
webhook's port can send anything; each case here once produced a 500 (an exception in the core or
in the log line, which ran outside the handler's guard).
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import orjson
import pytest

from tests.support.asgi import example_app, request
from tests.support.cases import JSON_HEADERS, load_sample

DEPTH = 1000  # under the JSON decoder's limit (1024), far past the encoder's and repr's comfort


class Deep:
    """A placeholder for a value nested ``depth`` lists deep: spliced into the body as text, since
    no JSON encoder writes what the decoder still accepts."""

    def __init__(self, depth: int = DEPTH) -> None:
        self.depth = depth

    @property
    def marker(self) -> str:
        return f"__deep_{self.depth}__"

    @property
    def text(self) -> bytes:
        return b"[" * self.depth + b'"x"' + b"]" * self.depth


def deep(depth: int = DEPTH) -> Any:
    return Deep(depth)


def encode(review: Any) -> bytes:
    used: list[Deep] = []

    def default(value: Any) -> Any:
        if isinstance(value, Deep):
            used.append(value)
            return value.marker
        raise TypeError

    body = orjson.dumps(review, default=default)
    for placeholder in used:
        body = body.replace(b'"' + placeholder.marker.encode() + b'"', placeholder.text)
    return body


def review_with(edit: Any) -> bytes:
    review = load_sample()
    edit(review)
    return encode(review)


def _container_name_list(r: Any) -> None:
    r["request"]["object"]["spec"]["containers"][0]["name"] = ["app"]


def _container_name_deep(r: Any) -> None:
    r["request"]["object"]["spec"]["containers"][0]["name"] = deep()


def _annotation_deep(r: Any) -> None:
    r["request"]["object"]["metadata"]["annotations"] = {"eks.amazonaws.com/token-expiration": deep()}


def _skip_containers_deep(r: Any) -> None:
    r["request"]["object"]["metadata"]["annotations"] = {"eks.amazonaws.com/skip-containers": deep()}


def _env_name_deep(r: Any) -> None:
    r["request"]["object"]["spec"]["containers"][0]["env"] = [{"name": deep(), "value": "x"}]


def _mount_name_deep(r: Any) -> None:
    mount = {"name": deep(), "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"}
    r["request"]["object"]["spec"]["containers"][0]["volumeMounts"] = [mount]


def _token_expiration_5000_digits(r: Any) -> None:
    r["request"]["object"]["metadata"]["annotations"] = {"eks.amazonaws.com/token-expiration": "9" * 5000}


def _unknown_field_deep(r: Any) -> None:
    r["request"]["object"]["spec"]["containers"][0]["futureField"] = deep()


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(_container_name_list, id="container-name-list"),
        pytest.param(_container_name_deep, id="container-name-1000-deep"),
        pytest.param(_annotation_deep, id="token-expiration-1000-deep"),
        pytest.param(_skip_containers_deep, id="skip-containers-1000-deep"),
        pytest.param(_env_name_deep, id="env-name-1000-deep"),
        pytest.param(_mount_name_deep, id="mount-name-1000-deep"),
        pytest.param(_token_expiration_5000_digits, id="pod-token-expiration-5000-digits"),
        pytest.param(_unknown_field_deep, id="unknown-field-1000-deep"),
    ],
)
def test_hostile_pod_is_answered_not_500(edit: Any, capsys: pytest.CaptureFixture[str], caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="irsa_webhook.admission"):
        response = request(example_app(), "POST", "/mutate", content=review_with(edit), headers=JSON_HEADERS)
    assert response.status_code == 200, response.text
    assert response.json()["response"]["allowed"] is True
    lines = [line for line in capsys.readouterr().err.splitlines() if '"msg":"admission"' in line]
    assert len(lines) == 1


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param(("spec", "serviceAccountName"), ["app"], id="service-account-list"),
        pytest.param(("spec", "serviceAccountName"), deep(), id="service-account-1000-deep"),
        pytest.param(("metadata", "name"), {"a": 1}, id="pod-name-object"),
    ],
)
def test_pod_with_non_string_identity_fields_is_refused(path: tuple[str, str], value: Any) -> None:
    def edit(r: Any) -> None:
        r["request"]["object"][path[0]][path[1]] = value

    response = request(example_app(), "POST", "/mutate", content=review_with(edit), headers=JSON_HEADERS)
    assert response.status_code == 200
    answer = response.json()["response"]
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 400
    assert f"{path[0]}.{path[1]}" in answer["status"]["message"]


def test_request_namespace_not_a_string_is_refused() -> None:
    def edit(r: Any) -> None:
        r["request"]["namespace"] = ["x"]

    answer = request(example_app(), "POST", "/mutate", content=review_with(edit), headers=JSON_HEADERS).json()[
        "response"
    ]
    assert (answer["allowed"], answer["status"]["code"]) == (False, 400)


@pytest.mark.parametrize(
    "operation", [deep(), {"a": deep(300)}, "X" * 100_000, 7], ids=["deep", "object", "long", "int"]
)
def test_odd_operation_on_the_ignored_path_is_logged(
    operation: Any, capsys: pytest.CaptureFixture[str], caplog: Any
) -> None:
    def edit(r: Any) -> None:
        r["request"]["operation"] = operation

    with caplog.at_level(logging.INFO, logger="irsa_webhook.admission"):
        response = request(example_app(), "POST", "/mutate", content=review_with(edit), headers=JSON_HEADERS)
    assert response.status_code == 200
    assert response.json()["response"] == {"uid": load_sample()["request"]["uid"], "allowed": True}
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"msg":"admission"' in line]
    assert len(lines) == 1
    assert lines[0]["decision"] == "ignored"
    assert len(lines[0]["operation"]) <= 64


def test_nesting_past_the_decoder_limit_is_a_400() -> None:
    body = b'{"request": {"uid": "u", "object": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    response = request(example_app(), "POST", "/mutate", content=body, headers=JSON_HEADERS)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_unhashable_everything_in_one_pod() -> None:
    review = load_sample()
    pod = review["request"]["object"]
    for container in pod["spec"]["containers"]:
        container["name"] = {"n": [1]}
        container["env"] = [{"name": ["AWS_ROLE_ARN"]}, "x", None]
        container["volumeMounts"] = [{"name": {"x": 1}, "mountPath": ["p"]}]
    pod["spec"]["volumes"] = [{"name": ["aws-iam-token"]}, 5]
    pod["spec"]["initContainers"] = [copy.deepcopy(pod["spec"]["containers"][0])]
    response = request(example_app(), "POST", "/mutate", content=orjson.dumps(review), headers=JSON_HEADERS)
    assert response.status_code == 200
