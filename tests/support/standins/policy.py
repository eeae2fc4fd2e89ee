"""IAM policy evaluation for the stand-ins, written from AWS's documentation and nothing of ours.

The stand-ins judge the documents our code writes (a role's trust policy, a bucket policy) the way
AWS does, so this module deliberately shares no code with ``webhook.oidc.policycheck`` or the
provisioner: a bug there must not be mirrored here.

What it evaluates, as AWS documents it:

- a statement applies when its Principal, Action/NotAction, Resource/NotResource and every
  Condition match; an explicit Deny wins over any Allow; with no Allow the answer is an implicit deny;
- Principal ``"*"`` and ``{"AWS": "*"}`` match everyone (anonymous callers included);
- actions match case-insensitively, resources case-sensitively, both with ``*`` and ``?`` wildcards;
- conditions: every operator, every key of an operator and (for a positive operator) any value
  of a key must match. Operators: String(Not)Equals, String(Not)EqualsIgnoreCase, String(Not)Like,
  Arn(Not)Equals, Arn(Not)Like, Bool, Null, each with an ``IfExists`` suffix and the
  ``ForAnyValue:``/``ForAllValues:`` set prefixes. Condition key names are case-insensitive.
  A key missing from the request fails a positive operator and satisfies a negated one (AWS's
  rule, the reason policies pair StringNotEquals with Null); ``IfExists`` makes a missing key match;
  ``ForAllValues`` is true for a missing key, ``ForAnyValue`` false.

Anything else (NotPrincipal, numeric, date or IP operators, policy variables in a condition) raises
:class:`UnsupportedPolicy`: the stand-in refuses rather than guess, and says so.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

JSON = dict[str, Any]


class UnsupportedPolicy(ValueError):
    """A policy uses something this evaluator does not implement (or is malformed)."""


@dataclass(frozen=True)
class Request:
    """Who asks to do what to which resource, and the request's condition keys (names lowercased)."""

    principal_type: str  # "Federated", "AWS", "Anonymous"
    principal: str  # a provider ARN, an IAM ARN, "*" for an anonymous caller
    action: str
    resource: str | None = None  # None for a trust policy (the role is the resource)
    context: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


def load_policy(document: str | Mapping[str, Any]) -> JSON:
    """A policy as IAM or S3 returns it: parsed already (boto3 decodes trust policies), JSON text, or
    URL-encoded JSON text (IAM's wire form)."""
    if isinstance(document, Mapping):
        return dict(document)
    text = document.strip()
    if not text.startswith("{"):
        text = urllib.parse.unquote(text)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnsupportedPolicy(f"the policy is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise UnsupportedPolicy("the policy is not a JSON object")
    return parsed


def statements(policy: Mapping[str, Any]) -> list[JSON]:
    found = policy.get("Statement", [])
    found = [found] if isinstance(found, dict) else found
    if not isinstance(found, list) or not all(isinstance(s, dict) for s in found):
        raise UnsupportedPolicy("Statement is neither an object nor a list of objects")
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def evaluate(policy: str | Mapping[str, Any], request: Request) -> Verdict:
    """AWS's answer to ``request`` under ``policy`` alone: Deny wins, else an Allow is needed."""
    allowed_by: str | None = None
    for number, statement in enumerate(statements(load_policy(policy))):
        name = str(statement.get("Sid") or f"#{number}")
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise UnsupportedPolicy(f"statement {name}: Effect {effect!r} is neither Allow nor Deny")
        if not applies(statement, request, name):
            continue
        if effect == "Deny":
            return Verdict(False, f"explicitly denied by statement {name}")
        allowed_by = allowed_by or name
    if allowed_by is None:
        return Verdict(False, "no statement allows it")
    return Verdict(True, f"allowed by statement {allowed_by}")


def applies(statement: Mapping[str, Any], request: Request, name: str) -> bool:
    return (
        _principal_matches(statement, request, name)
        and _matches_element(statement, "Action", request.action, name, ignore_case=True)
        and (request.resource is None or _matches_element(statement, "Resource", request.resource, name))
        and conditions_match(statement.get("Condition", {}), request.context, name)
    )


def _principal_matches(statement: Mapping[str, Any], request: Request, name: str) -> bool:
    if "NotPrincipal" in statement:
        raise UnsupportedPolicy(f"statement {name}: NotPrincipal is not supported by the stand-in")
    principal = statement.get("Principal")
    if principal is None:
        raise UnsupportedPolicy(f"statement {name}: a resource or trust policy statement needs a Principal")
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        raise UnsupportedPolicy(f"statement {name}: Principal {principal!r} is neither '*' nor an object")
    if "*" in as_list(principal.get("AWS", [])):  # AWS documents {"AWS": "*"} as equal to "*"
        return True
    return request.principal in as_list(principal.get(request.principal_type, []))


def _matches_element(
    statement: Mapping[str, Any], element: str, value: str, name: str, ignore_case: bool = False
) -> bool:
    if element in statement and f"Not{element}" in statement:
        raise UnsupportedPolicy(f"statement {name}: both {element} and Not{element}")
    if element in statement:
        return any(wildcard_match(p, value, ignore_case) for p in as_list(statement[element]))
    if f"Not{element}" in statement:
        return not any(wildcard_match(p, value, ignore_case) for p in as_list(statement[f"Not{element}"]))
    raise UnsupportedPolicy(f"statement {name}: no {element} or Not{element}")


@lru_cache(maxsize=512)
def _wildcard_re(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: Any, value: str, ignore_case: bool = False) -> bool:
    """IAM's ``*`` (any run, even empty, across ``/`` and ``:``) and ``?`` (one character)."""
    return bool(_wildcard_re(str(pattern), ignore_case).fullmatch(value))


def _arn_like(pattern: str, value: str) -> bool:
    """ArnLike: the six colon-separated parts are matched one by one."""
    pattern_parts, value_parts = pattern.split(":", 5), value.split(":", 5)
    if len(pattern_parts) != 6 or len(value_parts) != 6:
        return False
    return all(wildcard_match(p, v) for p, v in zip(pattern_parts, value_parts, strict=True))


# operator -> (one request value against one policy value, negated)
_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "stringequals": (lambda v, p: v == p, False),
    "stringnotequals": (lambda v, p: v == p, True),
    "stringequalsignorecase": (lambda v, p: v.casefold() == p.casefold(), False),
    "stringnotequalsignorecase": (lambda v, p: v.casefold() == p.casefold(), True),
    "stringlike": (lambda v, p: wildcard_match(p, v), False),
    "stringnotlike": (lambda v, p: wildcard_match(p, v), True),
    "arnequals": (lambda v, p: v == p, False),
    "arnnotequals": (lambda v, p: v == p, True),
    "arnlike": (lambda v, p: _arn_like(p, v), False),
    "arnnotlike": (lambda v, p: _arn_like(p, v), True),
    "bool": (lambda v, p: v.lower() == p.lower(), False),
}


def _policy_values(raw: Any, where: str) -> list[str]:
    values = []
    for value in as_list(raw):
        if isinstance(value, bool):
            values.append("true" if value else "false")
        elif isinstance(value, str | int | float):
            if isinstance(value, str) and "${" in value:
                raise UnsupportedPolicy(f"{where}: policy variables are not supported by the stand-in")
            values.append(str(value))
        else:
            raise UnsupportedPolicy(f"{where}: value {value!r} is not a string, number or boolean")
    return values


def conditions_match(condition: Any, context: Mapping[str, Sequence[str]], name: str) -> bool:
    """Every operator, and every key under it, matches (see the module docstring)."""
    if not isinstance(condition, dict):
        raise UnsupportedPolicy(f"statement {name}: Condition is not an object")
    lowered = {key.lower(): list(values) for key, values in context.items()}
    for operator, keys in condition.items():
        if not isinstance(keys, dict):
            raise UnsupportedPolicy(f"statement {name}: Condition {operator} is not an object")
        for key, raw in keys.items():
            where = f"statement {name}: {operator} {key}"
            if not _one_condition(operator, lowered.get(key.lower()), _policy_values(raw, where), where):
                return False
    return True


def _one_condition(operator: str, request_values: list[str] | None, policy_values: list[str], where: str) -> bool:
    op = operator.lower()
    quantifier = ""
    for prefix in ("foranyvalue:", "forallvalues:"):
        if op.startswith(prefix):
            quantifier, op = prefix, op.removeprefix(prefix)
    if_exists = op.endswith("ifexists")
    op = op.removesuffix("ifexists")
    if op == "null":
        if quantifier:
            raise UnsupportedPolicy(f"{where}: Null with a set prefix")
        missing = not request_values
        return all((p.lower() == "true") == missing for p in policy_values)
    if op not in _OPERATORS:
        raise UnsupportedPolicy(f"{where}: operator {operator} is not supported by the stand-in")
    compare, negated = _OPERATORS[op]

    def one(value: str) -> bool:
        hit = any(compare(value, p) for p in policy_values)
        return not hit if negated else hit

    if not request_values:
        if quantifier == "forallvalues:":
            return True
        if quantifier == "foranyvalue:":
            return False
        return if_exists or negated
    if quantifier == "forallvalues:":
        return all(one(v) for v in request_values)
    if quantifier == "foranyvalue:" or not negated:
        return any(one(v) for v in request_values)
    # A negated operator without a set prefix: no request value may match any policy value.
    return all(one(v) for v in request_values)
