"""How the self-hosted commands talk to the user: JSON on stdout, one-line messages on stderr."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from typing import Any

from webhook.oidc.errors import InputError

EXIT_OK = 0
EXIT_BAD_INPUT = 2  # argparse's own code for usage errors, so all input mistakes exit alike

Handler = Callable[[Any], int]


def to_json(document: object) -> str:
    """Indented JSON with a trailing newline: readable in a terminal and diff-friendly on disk."""
    return json.dumps(document, indent=2) + "\n"


def error(message: str) -> int:
    """Print ``irsa-webhook: error: <message>`` (one line, like argparse) and return exit code 2."""
    print(f"irsa-webhook: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def usage(parser: argparse.ArgumentParser) -> int:
    """For a command group given without its subcommand: its help on stderr, exit 2."""
    parser.print_help(sys.stderr)
    return EXIT_BAD_INPUT


def note(message: str) -> None:
    print(message, file=sys.stderr)


def exits_2_on_input_error(handler: Handler) -> Handler:
    """Turn an InputError raised anywhere below ``handler`` into one stderr line and exit 2."""

    @functools.wraps(handler)
    def wrapper(args: Any) -> int:
        try:
            return handler(args)
        except InputError as exc:
            return error(str(exc))

    return wrapper
