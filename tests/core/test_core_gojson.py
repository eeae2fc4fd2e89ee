"""Go's encoding/json rules the ConfigMap and Pod Identity sources share."""

from __future__ import annotations

import pytest

from webhook.core import gojson


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        pytest.param('{"RoleARN": "a"}', "RoleARN", "a", id="exact"),
        pytest.param('{"rolearn": "a"}', "RoleARN", "a", id="any-case"),
        pytest.param('{"RoleARN": "a", "rolearn": "b"}', "RoleARN", "b", id="last-key-wins"),
        pytest.param('{"RoleARN": "a", "rolearn": null}', "RoleARN", "a", id="null-sets-nothing"),
        pytest.param('{"\u212aey": "a"}', "Key", "a", id="kelvin-sign-folds-to-k"),
        pytest.param('{"\u017fa": "a"}', "Sa", "a", id="long-s-folds-to-s"),
        pytest.param('{"R\u00f6leARN": "a"}', "RoleARN", None, id="other-letters-never-fold"),
        pytest.param('{"other": "a"}', "RoleARN", None, id="absent"),
    ],
)
def test_field(text: str, name: str, expected: str | None) -> None:
    document = gojson.loads(text)
    assert isinstance(document, gojson.Object)
    assert gojson.field(document, name) == expected


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "[" * 5000 + "]" * 5000, "{", ""])
def test_not_json_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        gojson.loads(text)


def test_numbers_stay_as_written() -> None:
    assert gojson.loads("[3600, 3600.0, " + "9" * 5000 + "]") == [
        gojson.Number("3600"),
        gojson.Number("3600.0"),
        gojson.Number("9" * 5000),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{}", "object"), ("[]", "array"), ("true", "bool"), ("1", "number"), ('"x"', "string"), ("null", "null")],
)
def test_type_names_are_gos(text: str, expected: str) -> None:
    assert gojson.type_name(gojson.loads(text)) == expected
