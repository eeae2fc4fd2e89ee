"""JSON read the way Go's ``encoding/json`` reads it into a struct, for the files and ConfigMaps the
upstream webhook defined (its users' files must mean the same thing here).

* Objects keep their (key, value) pairs in document order (:class:`Object`): Go assigns fields key by
  key, so with two keys for one field the last one wins.
* A key sets the field of the same name, else the field whose name equals it case-insensitively under
  Go's folding (ASCII letters, plus the Kelvin sign for k and the long s for s; nothing else folds
  into ASCII): :func:`field`.
* Numbers stay as written (:class:`Number`): Go decides per field whether ``3600.0`` or a
  5,000-digit literal is acceptable, and Python's ``int()`` would raise on the latter.
* ``NaN`` and ``Infinity``, which Python's decoder accepts, are errors, as in JSON.

Errors: :func:`loads` raises ValueError (RecursionError included) with the decoder's message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class Object(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs in document order."""


@dataclass(frozen=True, slots=True)
class Number:
    """A JSON number as written."""

    text: str


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str) -> Any:
    """Decode ``text``; ValueError (with the decoder's message) when it is not JSON."""
    try:
        return json.loads(
            text, object_pairs_hook=Object, parse_int=Number, parse_float=Number, parse_constant=_reject_constant
        )
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


_FOLD_RUNE = {"\u212a": "K", "\u017f": "S"}  # the Kelvin sign and the long s


def fold(name: str) -> str:
    """Go's case folding of a key compared with an ASCII field name."""
    if name.isascii():
        return name.upper()
    return "".join(_FOLD_RUNE.get(c, c.upper() if c.isascii() else c) for c in name)


def field(obj: Object, name: str) -> Any:
    """The value Go gives the struct field ``name`` (ASCII): the last key that sets it; None if none does.

    A ``null`` sets nothing (Go leaves the field as it was), so an earlier value stands.
    """
    folded = fold(name)
    value = None
    for key, item in obj:
        if item is not None and (key == name or fold(key) == folded):
            value = item
    return value


def type_name(value: Any) -> str:
    """What Go's type errors call a decoded JSON value."""
    if isinstance(value, Object):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Number):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null" if value is None else type(value).__name__
