"""A trust policy document parsed into statements the checker and the linter can walk.

Only the parts that matter for ``sts:AssumeRoleWithWebIdentity`` are modelled: Effect,
Action/NotAction, Principal/NotPrincipal and Condition (Resource is meaningless in a trust
policy). Structural mistakes IAM would reject (no Effect, both Action and NotAction, a Condition
that is not an object, ...) raise :class:`InputError` naming the statement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from webhook.oidc.conditions import Operator, parse_operator
from webhook.oidc.errors import InputError


@dataclass(frozen=True)
class Condition:
    """One operator/key pair of a Condition block, with its values as strings."""

    operator: Operator
    key: str
    values: tuple[str, ...]

    def describe(self) -> str:
        shown = self.values[0] if len(self.values) == 1 else list(self.values)
        return f"{self.operator.text} {self.key} = {json.dumps(shown)}"


@dataclass(frozen=True)
class Principals:
    """The principals a statement names. ``everyone`` is ``"*"`` or ``{"AWS": "*"}``."""

    everyone: bool
    federated: tuple[str, ...]
    other: tuple[str, ...]  # AWS/Service/CanonicalUser entries: never a web identity


@dataclass(frozen=True)
class Statement:
    index: int  # 0-based position in the policy
    sid: str | None
    effect: str  # "Allow" or "Deny"
    actions: tuple[str, ...]
    not_action: bool
    principals: Principals
    not_principal: bool
    conditions: tuple[Condition, ...]

    @property
    def label(self) -> str:
        return f"statement {self.index}" + (f" ({self.sid})" if self.sid else "")


def loads(text: str, source: str = "policy") -> list[Statement]:
    """Parse policy JSON text; a file-level error names ``source``."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{source} is not valid JSON ({exc})") from exc
    return parse(document, source)


def parse(document: object, source: str = "policy") -> list[Statement]:
    """Parse a decoded policy document (see the module docstring)."""
    if not isinstance(document, dict):
        raise InputError(f"{source} is not a JSON object")
    raw = document.get("Statement")
    if raw is None:
        raise InputError(f"{source} has no Statement")
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise InputError(f"{source} has an empty Statement list")
    return [_statement(index, item) for index, item in enumerate(items)]


def _strings(value: object, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bool):  # before int: JSON true/false are allowed for Null and Bool
            out.append("true" if item else "false")
        elif isinstance(item, str | int | float):
            out.append(str(item))
        else:
            raise InputError(f"{where}: expected a string or a list of strings, found {json.dumps(item)}")
    if not out:
        raise InputError(f"{where}: empty list")
    return tuple(out)


def _statement(index: int, item: object) -> Statement:
    where = f"statement {index}"
    if not isinstance(item, dict):
        raise InputError(f"{where} is not a JSON object")
    effect = item.get("Effect")
    if effect not in {"Allow", "Deny"}:
        raise InputError(f'{where}: Effect must be "Allow" or "Deny", found {json.dumps(effect)}')
    sid = item.get("Sid")
    actions, not_action = _one_of(item, "Action", "NotAction", where)
    principal, not_principal = _one_of_raw(item, "Principal", "NotPrincipal", where)
    return Statement(
        index=index,
        sid=str(sid) if sid else None,
        effect=effect,
        actions=actions,
        not_action=not_action,
        principals=_principals(principal, where),
        not_principal=not_principal,
        conditions=_conditions(item.get("Condition"), where),
    )


def _one_of_raw(item: dict[str, Any], name: str, negated: str, where: str) -> tuple[object, bool]:
    if name in item and negated in item:
        raise InputError(f"{where} has both {name} and {negated}")
    if name in item:
        return item[name], False
    if negated in item:
        return item[negated], True
    raise InputError(f"{where} has neither {name} nor {negated}")


def _one_of(item: dict[str, Any], name: str, negated: str, where: str) -> tuple[tuple[str, ...], bool]:
    value, is_negated = _one_of_raw(item, name, negated, where)
    return _strings(value, f"{where} {negated if is_negated else name}"), is_negated


def _principals(value: object, where: str) -> Principals:
    if value == "*":
        return Principals(everyone=True, federated=(), other=())
    if not isinstance(value, dict) or not value:
        raise InputError(f'{where}: Principal must be "*" or an object such as {{"Federated": ARN}}')
    federated: tuple[str, ...] = ()
    other: list[str] = []
    everyone = False
    for kind, names in value.items():
        values = _strings(names, f"{where} Principal {kind}")
        if kind == "Federated":
            federated = values
        elif kind in {"AWS", "Service", "CanonicalUser"}:
            everyone = everyone or (kind == "AWS" and "*" in values)
            other.extend(values)
        else:
            raise InputError(f"{where}: unknown principal type {kind!r}")
    return Principals(everyone=everyone, federated=federated, other=tuple(other))


def _conditions(value: object, where: str) -> tuple[Condition, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise InputError(f"{where}: Condition must be a JSON object")
    out = []
    for op_text, block in value.items():
        operator = parse_operator(op_text)
        if not isinstance(block, dict) or not block:
            raise InputError(f"{where}: Condition {op_text} must map condition keys to values")
        for key, values in block.items():
            out.append(Condition(operator, key, _strings(values, f"{where} {op_text} {key}")))
    return tuple(out)
