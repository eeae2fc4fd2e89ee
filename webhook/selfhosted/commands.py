"""Registers the self-hosted subcommands (keys, oidc, trust-policy) on the main parser."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `keys`, `oidc` and `trust-policy` to the top-level subparsers (filled in by issue 5)."""
