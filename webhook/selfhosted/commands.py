"""Registers the self-hosted subcommands (keys, oidc, trust-policy) on the main parser.

Each command lives in its own ``cmd_*`` module with an ``add_parser(sub)`` that sets
``func=<callable(args) -> exit code>``; the pure logic they call lives in the other modules of
this package (keys, jwks, discovery, trustpolicy, policy, policycheck, policylint, tokens).
"""

from __future__ import annotations

import argparse
from typing import Any

from webhook.selfhosted import cmd_keys, cmd_oidc, cmd_trustpolicy


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `keys`, `oidc` and `trust-policy` to the top-level subparsers."""
    cmd_keys.add_parser(sub)
    cmd_oidc.add_parser(sub)
    cmd_trustpolicy.add_parser(sub)
