"""Wildcard matching in linear time: ``*`` any run of characters, ``?`` exactly one, everything else
literal (the ConfigMap's namespace globs, IAM's ``StringLike`` without its ``${}`` escapes).

A regular expression would do the same, but the ``re`` module backtracks: ``a*a*a*a*a*a*a*a*b`` against
a 63-character namespace took 20 s for one lookup, on the event loop, and namespace names are chosen
by tenants. Here the pattern is cut at its stars once, and a text is matched by placing each piece at
its leftmost possible place, which is always right for star-separated pieces: the work is at most the
text's length times the pattern's, whatever the pattern.
"""

from __future__ import annotations


def _fits(text: str, at: int, piece: str) -> bool:
    """``piece`` (``?`` matching any one character) stands in ``text`` at ``at``."""
    if at < 0 or at + len(piece) > len(text):
        return False
    return all(c == "?" or c == text[at + k] for k, c in enumerate(piece))


class Glob:
    """One wildcard pattern, cut at its stars once; :meth:`fullmatch` tests a whole text."""

    __slots__ = ("first", "last", "middle", "pattern", "starred")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        pieces = pattern.split("*")
        self.starred = len(pieces) > 1
        self.first = pieces[0]
        self.last = pieces[-1] if self.starred else ""
        self.middle = tuple(piece for piece in pieces[1:-1] if piece)  # "**" is one star

    def fullmatch(self, text: str) -> bool:
        if not self.starred:
            return len(text) == len(self.first) and _fits(text, 0, self.first)
        end = len(text) - len(self.last)  # where the last piece must start
        if end < len(self.first) or not _fits(text, 0, self.first) or not _fits(text, end, self.last):
            return False
        at = len(self.first)
        for piece in self.middle:
            # The leftmost place that fits, before the last piece; none: no match.
            while not _fits(text, at, piece):
                at += 1
                if at + len(piece) > end:
                    return False
            at += len(piece)
            if at > end:
                return False
        return True

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"
