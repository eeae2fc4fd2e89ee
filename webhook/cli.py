"""The `irsa-webhook` command line: one subcommand per job.

Subcommands live in their own modules and register themselves here through a
``register(subparsers)`` function, so this file stays a dispatcher.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from webhook import __version__
from webhook.commands import audit, certs, controller, keys, mutate, oidc, provision, serve, trustpolicy
from webhook.commands.common import Exit
from webhook.options.flags import normalise_argv
from webhook.options.tables import MUTATION_FLAGS, SERVER_FLAGS

_GO_FLAGS = (*SERVER_FLAGS, *MUTATION_FLAGS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="irsa-webhook",
        description="IAM Roles for Service Accounts (IRSA) for any Kubernetes cluster.",
    )
    parser.add_argument("--version", action="version", version=f"irsa-webhook {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve.register(sub)
    mutate.register(sub)
    certs.register(sub)
    audit.register(sub)
    keys.register(sub)
    oidc.register(sub)
    trustpolicy.register(sub)
    provision.register(sub)
    controller.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    # Upstream's image runs the binary with flags only (`/webhook --in-cluster=false ...`): that is `serve`.
    if args_in and args_in[0].startswith("-") and args_in[0] not in ("-h", "--help", "--version"):
        args_in.insert(0, "serve")
    parser = build_parser()
    args = parser.parse_args(normalise_argv(args_in, _GO_FLAGS))
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return Exit.USAGE
    result: int = func(args)
    return result
