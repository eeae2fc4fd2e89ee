"""Go-style command-line flags with an environment variable for each.

Upstream's Deployment args must work unchanged, so this accepts what Go's ``flag`` package accepts:
``--flag=value``, ``--flag value``, a single dash (``-flag=value``), booleans as ``--flag`` or
``--flag=false``, and durations such as ``100ms`` or ``1m30s``. Precedence, literally: a flag on the
command line beats its environment variable (``IRSA_WEBHOOK_<NAME>``), which beats the default.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.core.goparse import INT64_MAX, INT_RE, parse_go_bool, parse_go_int

ENV_PREFIX = "IRSA_WEBHOOK_"
# [0-9], not \d: \d also matches other scripts' digits ("١٢"), which Go never accepts.
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
# A Go time.Duration is an int64 of nanoseconds: about 292 years.
_MAX_DURATION_SECONDS = INT64_MAX / 1e9
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class FlagError(ValueError):
    """A flag or environment variable has a value of the wrong shape."""


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` in seconds (a bare number is taken as seconds for convenience)."""
    value = text.strip()
    if not value:
        raise FlagError("empty duration")
    sign = -1.0 if value.startswith("-") else 1.0
    if value[0] in "+-":  # one sign, as Go
        value = value[1:]
    if value == "0":
        return 0.0
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
        total = float(value)
    else:
        pos, total = 0, 0.0
        while pos < len(value):
            match = _DURATION_PART.match(value, pos)
            if not match:
                raise FlagError(f"invalid duration {_show_raw(text)} (examples: 500ms, 10s, 1m30s)")
            total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
    if total > _MAX_DURATION_SECONDS:
        raise FlagError(f"duration {_show_raw(text)} is out of range (at most 2562047h)")
    return sign * total


def parse_int(text: str) -> int:
    """Go's ``strconv.ParseInt(text, 10, 64)``: an optional sign and ASCII digits, in the int64 range.

    Stricter than ``int()``, which also takes spaces, underscores (``1_000``) and other scripts' digits,
    and fails with a multi-line message on strings of thousands of digits.
    """
    value = parse_go_int(text)
    if value is None:
        problem = "is out of range (64-bit integer)" if INT_RE.fullmatch(text) else "is not an integer"
        raise FlagError(f"{_show_raw(text)} {problem}")
    return value


def _show_raw(text: str, limit: int = 40) -> str:
    """A user's value quoted for a one-line message: escaped, and cut short when it is long."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


@dataclass(frozen=True, slots=True)
class Flag:
    name: str
    kind: str  # "str", "int", "bool", "duration"
    default: Any
    help: str
    short: str = ""  # a one-letter alias, as klog's -v

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper().replace("-", "_")

    def convert(self, raw: str, source: str) -> Any:
        try:
            if self.kind == "int":
                return parse_int(raw)
            if self.kind == "bool":
                parsed = parse_go_bool(raw)
                if parsed is None:
                    raise FlagError(f"{_show_raw(raw)} is not a boolean (true/false)")
                return parsed
            if self.kind == "duration":
                return parse_duration(raw)
        except (ValueError, FlagError) as exc:
            raise FlagError(f"invalid value for {source}: {exc}") from None
        return raw


def add_flags(parser: argparse.ArgumentParser, flags: Sequence[Flag], title: str) -> None:
    group = parser.add_argument_group(title)
    for flag in flags:
        help_text = f"{flag.help} (env {flag.env}; default {_show(flag.default, flag.kind)})"
        if flag.kind == "bool":
            group.add_argument(
                f"--{flag.name}",
                dest=flag.dest,
                nargs="?",
                const="true",
                default=None,
                metavar="BOOL",
                help=help_text,
            )
        else:
            names = [f"--{flag.name}", *([f"-{flag.short}"] if flag.short else [])]
            group.add_argument(*names, dest=flag.dest, default=None, metavar=flag.kind.upper(), help=help_text)


def resolve(
    args: argparse.Namespace, flags: Sequence[Flag], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Final values: command line, else environment, else default. Raises FlagError."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for flag in flags:
        raw = getattr(args, flag.dest, None)
        if raw is not None:
            values[flag.dest] = flag.convert(str(raw), f"--{flag.name}")
        elif flag.env in env:
            values[flag.dest] = flag.convert(env[flag.env], flag.env)
        else:
            values[flag.dest] = flag.default
    return values


def normalise_argv(argv: Sequence[str], flags: Sequence[Flag]) -> list[str]:
    """Turn Go's single-dash long flags (``-port=443``) into argparse's ``--port=443``."""
    names = {f.name for f in flags}
    out: list[str] = []
    for token in argv:
        single_dash = token.startswith("-") and not token.startswith("--") and len(token) > 2
        out.append("-" + token if single_dash and token[1:].split("=", 1)[0] in names else token)
    return out


def _show(value: Any, kind: str = "") -> str:
    if kind == "duration":
        return f"{value:g}s"
    if isinstance(value, bool):
        return str(value).lower()
    if value == "" or value is None:
        return "unset"
    return str(value)


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from environment variable ``name``, else ``default``.

    For test knobs that are not flags (how often a file is polled): anything unusable is the default.
    """
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if math.isfinite(value) and value > 0 else default
