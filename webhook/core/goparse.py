"""Go's ``strconv`` as upstream parses annotation and flag values with it, so a value means here exactly
what it meant to the webhook we replace (``ParseBool``'s spellings, ``ParseInt``'s ASCII digits and
int64 range)."""

from __future__ import annotations

import re

# Go's strconv.ParseInt(s, 10, 64): an optional sign and ASCII digits, nothing else.
INT_RE = re.compile(r"[+-]?[0-9]+")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
# 2^63 has 19 digits: a longer digit string (leading zeros aside) is out of range without parsing
# it, which also keeps int() far from Python's 4,300-digit conversion limit (a ValueError).
_INT64_DIGITS = 19
# Go's strconv.ParseBool spellings: upstream parses sts-regional-endpoints with it.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(value: str) -> bool | None:
    """``strconv.ParseBool``: True/False for its spellings, None for anything else."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def parse_go_int(value: str) -> int | None:
    """``strconv.ParseInt(value, 10, 64)``: the integer, or None where Go returns an error.

    None for anything but an optional sign and ASCII digits, and for values outside int64.
    """
    if not INT_RE.fullmatch(value):
        return None
    negative = value.startswith("-")
    digits = value.lstrip("+-").lstrip("0")
    if len(digits) > _INT64_DIGITS:
        return None
    number = -int(digits or "0") if negative else int(digits or "0")
    return number if INT64_MIN <= number <= INT64_MAX else None
