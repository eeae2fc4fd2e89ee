"""What every subcommand shares: one exit-code table, one message shape, one error helper.

Every message a command prints about itself is one line on stderr, ``irsa-webhook <command>: <message>``;
results go to stdout. Commands return an :class:`Exit` code and never call ``sys.exit`` themselves.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from webhook.oidc.errors import InputError


class Exit(IntEnum):
    """The exit codes of every command."""

    OK = 0
    """Done; nothing to report."""
    NO = 1
    """Done, and the answer is no: a pod denied (``mutate`` with ``--strict``), pods found (``audit``),
    a token the trust policy refuses (``trust-policy check``); for ``serve``: it could not serve (a port
    taken, no instance metadata)."""
    USAGE = 2
    """Bad flags or input (argparse's own code for usage errors, so every input mistake exits alike),
    or the job could not be done (``audit`` could not list, an eviction failed)."""
    FINDINGS = 3
    """Done, yes, with findings worth reading (``trust-policy check``)."""


Handler = Callable[[Any], int]


def fail(command: str, message: str, code: Exit = Exit.USAGE) -> int:
    """Print ``irsa-webhook <command>: <message>`` as one line on stderr and return ``code``."""
    print(f"irsa-webhook {command}: {one_line(message)}", file=sys.stderr)
    return code


def say(command: str, message: str) -> None:
    """A line about the run that is not an error (a flag corrected, a summary), in the same shape."""
    print(f"irsa-webhook {command}: {message}", file=sys.stderr)


def one_line(text: object) -> str:
    """Whitespace (newlines included) collapsed: a message is one line whatever it quotes."""
    return " ".join(str(text).split())


def to_json(document: object) -> str:
    """Indented JSON with a trailing newline: readable in a terminal and diff-friendly on disk."""
    return json.dumps(document, indent=2) + "\n"


def usage(parser: argparse.ArgumentParser) -> int:
    """For a command group given without its subcommand: its help on stderr, exit 2."""
    parser.print_help(sys.stderr)
    return Exit.USAGE


def note(message: str) -> None:
    """A hint for the reader (how to use what was written), on stderr as it is."""
    print(message, file=sys.stderr)


def input_errors(command: str) -> Callable[[Handler], Handler]:
    """Turn an InputError raised anywhere below the handler into one ``fail`` line and exit 2."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def wrapper(args: Any) -> int:
            try:
                return handler(args)
            except InputError as exc:
                return fail(command, str(exc))

        return wrapper

    return decorate
