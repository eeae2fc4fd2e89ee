"""What the converters share: the choices the user makes for every converted object, and the shape of
the objects they produce.

A converter is pure: ``convert(source, options) -> (objects, warnings)``. A source object it cannot
make sense of (a field of the wrong type, a role without a name) is an :class:`InputError`; a field
it understands but that has no equivalent in ours is a warning naming the source object and the
field, so that nothing is ever dropped without a word.

Every converted role says ``adoption: Always``: the role exists already, made by the other tool, and
carries no owner tag of ours, so any other adoption would leave it alone. A role tagged by another
owner is still never taken, whatever adoption says. Every converted object says ``deletionPolicy``
explicitly, ``Retain`` unless the user chose otherwise: deleting our object must not delete what
another tool made, until the user decides that it should.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.oidc.errors import InputError
from webhook.provisioner.model import API_GROUP, API_VERSION, JSON, DeletionPolicy

API = f"{API_GROUP}/{API_VERSION}"
# Where a converted object came from, kept on the object: why a role says adoption: Always stays
# readable in the cluster long after the conversion.
CONVERTED_FROM_ANNOTATION = f"{API_GROUP}/converted-from"
ADOPTION = "Always"


@dataclass(frozen=True)
class Options:
    """The user's choices, the same for every object of one run."""

    issuer_ref: str | None = None  # the IRSAIssuer the converted roles trust; or
    issuer_url: str | None = None  # an existing issuer (EKS) the roles trust directly
    deletion_policy: DeletionPolicy = "Retain"


Converted = tuple[list[JSON], list[str]]
Converter = Callable[[Mapping[str, Any], Options], Converted]


def issuer_fields(options: Options, who: str) -> JSON:
    """``issuerRef`` or ``issuerURL`` for a converted role, as the options say."""
    if options.issuer_url:
        return {"issuerURL": options.issuer_url}
    if options.issuer_ref:
        return {"issuerRef": options.issuer_ref}
    raise InputError(f"{who}: its role needs an issuer: pass --issuer NAME (an IRSAIssuer) or --issuer-url URL")


def our_object(kind: str, name: str, namespace: str | None, source: str, spec: JSON) -> JSON:
    metadata: JSON = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["annotations"] = {CONVERTED_FROM_ANNOTATION: source}
    return {"apiVersion": API, "kind": kind, "metadata": metadata, "spec": spec}


def mapping(value: object, where: str) -> Mapping[str, Any]:
    """``value`` as a mapping; absent (None) is empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{where} must be a mapping, not {type(value).__name__}")
    return value


def string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{where} must be a non-empty string")
    return value


def optional_string(value: object, where: str) -> str | None:
    if value is None or value == "":
        return None
    return string(value, where)


def strings(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"{where} must be a list of strings")
    return [string(item, f"{where}[{index}]") for index, item in enumerate(value)]


def string_map(value: object, where: str) -> dict[str, str]:
    found = mapping(value, where)
    for key, item in found.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise InputError(f"{where} must map strings to strings ({key!r}: {item!r})")
    return dict(found)


def flag(value: object, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InputError(f"{where} is {value!r}: use true or false")
    return value


def unknown_fields(value: Mapping[str, Any], known: Sequence[str], who: str, where: str) -> list[str]:
    """A warning per field the converter does not know: a newer version of the tool may mean something by it."""
    prefix = f"{where}." if where else ""
    return [
        f"{who}: {prefix}{key} is not a field this converter knows: not converted" for key in value if key not in known
    ]
