"""IAM condition operators, as IAM evaluates them for a web-identity trust policy.

The request context of ``sts:AssumeRoleWithWebIdentity`` with an OIDC provider holds
``<provider host/path>:sub`` (one value) and ``<provider host/path>:aud`` (the token's audiences,
usually one). The rules implemented here are IAM's documented ones ("IAM JSON policy elements:
Condition operators" and "Conditions with multiple context keys or values"):

* Condition key names are case-insensitive; values are compared case-sensitively except by the
  ``...IgnoreCase`` operators.
* Several operators in a Condition block are ANDed; several keys under one operator are ANDed;
  several values for one key are ORed (for a negated operator, NORed: the request value must
  match none of them).
* ``StringLike``/``StringNotLike``: ``*`` matches any run of characters (also none), ``?`` exactly
  one; ``${*}``, ``${?}`` and ``${$}`` are a literal ``*``, ``?``, ``$``.
* A key missing from the request: the condition is false, except for the negated operators
  (``StringNotEquals``, ``StringNotLike``, ... any operator whose name has ``Not``), which are true.
  ``...IfExists`` is true when the key is missing and otherwise evaluates normally. ``Null`` with
  ``true`` is true exactly when the key is missing (``false``: when it is present).
* ``ForAllValues:`` is true when every request value satisfies the operator, and also when the key
  is missing or empty. ``ForAnyValue:`` is true when at least one request value satisfies it, and
  false when the key is missing.
* A plain (non-set) operator on a key that has several values in the request (a token with several
  audiences) is not specified by IAM's documentation; here a positive operator passes if any
  request value matches and a negated one if no request value matches, and the lint suggests a set
  operator.

Operators other than the String ones and Null cannot be evaluated against a web-identity request
here; on a key the request does not have they follow the missing-key rule, otherwise they raise
:class:`InputError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from webhook.oidc.errors import InputError

Context = Mapping[str, tuple[str, ...]]  # lowercased key -> request values

_STRING_OPERATORS = {
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
}


@dataclass(frozen=True)
class Operator:
    """A parsed condition operator such as ``ForAnyValue:StringLikeIfExists``."""

    text: str  # as written in the policy
    base: str  # e.g. StringLike
    set_qualifier: str | None  # "ForAnyValue", "ForAllValues" or None
    if_exists: bool

    @property
    def negated(self) -> bool:
        return "Not" in self.base

    @property
    def is_like(self) -> bool:
        return self.base in {"StringLike", "StringNotLike"}

    @property
    def positive(self) -> bool:
        """True for operators that require the value to be something (not Not*, not Null)."""
        return not self.negated and self.base != "Null"


def parse_operator(text: str) -> Operator:
    """Split ``[ForAnyValue:|ForAllValues:]<Base>[IfExists]``."""
    qualifier, sep, rest = text.partition(":")
    if not sep:
        qualifier, rest = "", text
    elif qualifier not in {"ForAnyValue", "ForAllValues"}:
        raise InputError(f"unknown condition set operator {qualifier!r} in {text!r}")
    if_exists = rest.endswith("IfExists") and rest != "IfExists"
    base = rest.removesuffix("IfExists") if if_exists else rest
    if not re.fullmatch(r"[A-Z][A-Za-z]+", base):
        raise InputError(f"{text!r} is not a condition operator")
    return Operator(text=text, base=base, set_qualifier=qualifier or None, if_exists=if_exists)


@lru_cache(maxsize=256)
def like_pattern(value: str) -> re.Pattern[str]:
    """The regex for an IAM ``StringLike`` value (see the module docstring)."""
    parts = []
    for piece in re.findall(r"\$\{[*?$]\}|[*?]|[^*?$]+|\$", value):
        if piece == "*":
            parts.append(".*")
        elif piece == "?":
            parts.append(".")
        elif piece.startswith("${"):
            parts.append(re.escape(piece[2]))
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts), re.DOTALL)


def _matches(op: Operator, policy_value: str, request_value: str) -> bool:
    """Does one request value match one policy value, ignoring the operator's negation?"""
    if op.base in {"StringEquals", "StringNotEquals"}:
        return request_value == policy_value
    if op.base in {"StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"}:
        return request_value.casefold() == policy_value.casefold()
    return like_pattern(policy_value).fullmatch(request_value) is not None


def _value_satisfies(op: Operator, policy_values: Sequence[str], request_value: str) -> bool:
    hit = any(_matches(op, value, request_value) for value in policy_values)
    return not hit if op.negated else hit


def _when_missing(op: Operator) -> bool:
    """The result of ``op`` on a key the request does not have (the module docstring's rules)."""
    if op.set_qualifier == "ForAllValues":
        return True
    if op.set_qualifier == "ForAnyValue":
        return False
    return op.if_exists or op.negated


def evaluate(op: Operator, key: str, policy_values: Sequence[str], context: Context) -> bool:
    """Evaluate ``op`` on ``key`` with the policy's values against the request ``context``."""
    request_values = context.get(key.lower())
    present = bool(request_values)
    if op.base == "Null":
        wanted = {value.lower() for value in policy_values}
        if not wanted <= {"true", "false"}:
            raise InputError(f"Null on {key!r} takes true or false, not {policy_values!r}")
        return ("true" in wanted and not present) or ("false" in wanted and present)
    if not request_values:
        return _when_missing(op)
    if op.base not in _STRING_OPERATORS:
        raise InputError(f"condition operator {op.text!r} on {key!r} cannot be evaluated for a web identity")
    results = [_value_satisfies(op, policy_values, value) for value in request_values]
    if op.set_qualifier == "ForAllValues":
        return all(results)
    if op.set_qualifier == "ForAnyValue":
        return any(results)
    return all(results) if op.negated else any(results)
