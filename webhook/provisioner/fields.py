"""Reading the fields of an object's spec: each mistake one line that names the field.

Shared by the readers of every kind (``spec`` for IRSAIssuer, ``rolespec`` for the role kinds), so
that a mistake reads the same whatever the kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from webhook.oidc.errors import InputError


def mapping(value: object, where: str) -> Mapping[str, Any]:
    """``value`` as a mapping; absent (None) is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{where} must be a mapping, not {type(value).__name__}")
    return value


def known(value: Mapping[str, Any], fields: Sequence[str], where: str) -> None:
    """Refuse unknown fields, listing the known ones: a typo must not fall back to a default silently."""
    unknown = sorted(str(key) for key in value if key not in fields)
    if unknown:
        raise InputError(f"unknown field {', '.join(unknown)} in {where}: the known fields are {', '.join(fields)}")


def string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{where} must be a non-empty string")
    return value


def strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list):
        raise InputError(f"{where} must be a list of strings")
    return [string(item, f"{where}[{index}]") for index, item in enumerate(value)]


def unique(values: Sequence[str], where: str) -> None:
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise InputError(f"{where} lists {', '.join(repeated)} more than once")


def generation(metadata: Mapping[str, Any]) -> int:
    """``metadata.generation`` (0 when absent: an object read from a file has none)."""
    value = metadata.get("generation", 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"metadata.generation is {value!r}, not an integer")
    return value
