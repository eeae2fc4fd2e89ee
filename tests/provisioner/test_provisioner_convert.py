"""The converters as pure functions: which objects each takes, inputs left untouched, the same answer
every time, and the options reaching every object. What each field becomes is in the table cases
(tests/cases/convert, run through the command in tests/commands)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.support.cases import load_yaml
from tests.support.paths import CASES
from webhook.oidc.errors import InputError
from webhook.provisioner.convert import Options, converter_for, eksctl, irsamanager

SOURCES = [
    obj
    for path in sorted((CASES / "convert").glob("*.yaml"))
    if path.name != "bad-input.yaml"
    for document in yaml.safe_load_all(load_yaml(path)["input"])
    for obj in (document.get("items", [document]) if document else [])
    if converter_for(obj) is not None
]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param({"apiVersion": "irsa-manager.kkb0318.github.io/v1alpha1", "kind": "IRSA"}, "irsa", id="irsa"),
        pytest.param(
            {"apiVersion": "irsa-manager.kkb0318.github.io/v1alpha1", "kind": "IRSASetup"}, "irsa", id="irsasetup"
        ),
        pytest.param({"apiVersion": "eksctl.io/v1alpha5", "kind": "ClusterConfig"}, "eksctl", id="clusterconfig"),
        pytest.param({"apiVersion": "irsa-manager.kkb0318.github.io/v1alpha1", "kind": "Other"}, None, id="other-kind"),
        pytest.param({"apiVersion": "eksctl.io/v1alpha5", "kind": "NodeGroup"}, None, id="eksctl-other-kind"),
        pytest.param({"apiVersion": "irsa-webhook.io/v1alpha1", "kind": "IRSARole"}, None, id="ours"),
        pytest.param({"apiVersion": "v1", "kind": "ServiceAccount"}, None, id="kubernetes"),
    ],
)
def test_each_tool_takes_its_own_kinds(obj: dict[str, Any], expected: str | None) -> None:
    converters = {"irsa": irsamanager.convert, "eksctl": eksctl.convert, None: None}
    assert converter_for(obj) is converters[expected]


def test_the_case_inputs_hold_every_source_kind() -> None:
    assert {obj["kind"] for obj in SOURCES} == {"IRSA", "IRSASetup", "ClusterConfig"}


@pytest.mark.parametrize("obj", SOURCES, ids=lambda obj: f"{obj['kind']}-{obj['metadata']['name']}")
def test_pure_the_input_is_untouched_and_the_answer_the_same(obj: dict[str, Any]) -> None:
    converter = converter_for(obj)
    assert converter is not None
    before = copy.deepcopy(obj)
    options = Options(issuer_ref="main")
    first = converter(obj, options)
    assert obj == before
    assert converter(copy.deepcopy(obj), options) == first


@pytest.mark.parametrize("obj", SOURCES, ids=lambda obj: f"{obj['kind']}-{obj['metadata']['name']}")
def test_the_options_reach_every_object(obj: dict[str, Any]) -> None:
    converter = converter_for(obj)
    assert converter is not None
    url = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC"
    objects, _ = converter(obj, Options(issuer_url=url, deletion_policy="Delete"))
    for converted in objects:
        assert converted["spec"]["deletionPolicy"] == "Delete"
        if converted["kind"] != "IRSAIssuer":
            assert converted["spec"]["issuerURL"] == url
            assert "issuerRef" not in converted["spec"]


def test_a_role_without_an_issuer_is_refused_not_guessed() -> None:
    irsa = next(obj for obj in SOURCES if obj["kind"] == "IRSA")
    with pytest.raises(InputError, match="pass --issuer NAME"):
        irsamanager.convert(irsa, Options())


def test_the_stack_eksctl_made_a_role_with() -> None:
    assert eksctl.stack_name("prod", "default", "app") == "eksctl-prod-addon-iamserviceaccount-default-app"
