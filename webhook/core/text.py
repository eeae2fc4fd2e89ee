"""Text for a human's terminal: what a tenant wrote must not be able to drive it.

Role ARNs, env values, names and API messages end up in the audit's table, in the CronJob's log and
in warnings on stderr. A control character there (an ANSI escape sequence, a carriage return, a
Unicode bidirectional override) would recolour, hide or reorder what the operator reads, so each one
is written as its Python escape (``\\x1b``, ``\\u202e``) instead: visible, and impossible to act on.
"""

from __future__ import annotations

import unicodedata

# Cc: C0 and C1 controls (ESC, CR, BEL, CSI ...); Cf: format characters (bidi overrides and isolates,
# zero-width joiners); Zl/Zp: the line and paragraph separators a terminal may break on.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def printable(text: str) -> str:
    """``text`` with every control or format character escaped; unchanged when it has none."""
    if text.isprintable():  # the common case, in C: no copy
        return text
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in _UNPRINTABLE else c for c in text
    )
