"""``irsa-webhook oidc discovery`` and ``oidc jwks``: the two files an OIDC issuer publishes."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from webhook.commands import files
from webhook.commands.common import Exit, input_errors, note, to_json, usage
from webhook.oidc.discovery import DISCOVERY_PATH, discovery_document
from webhook.oidc.errors import InputError
from webhook.oidc.issuer import port_note
from webhook.oidc.jwks import JSONObject, jwks, signing_algorithms
from webhook.oidc.keys import PublicKey, load_public_keys

JWKS_NAME = "keys.json"

KEY_HELP = (
    "PEM file with the public key kube-apiserver verifies tokens with (its --service-account-key-file); "
    "a private key or certificate also works (only the public half is used); repeat for rotation"
)

DISCOVERY_DESCRIPTION = """\
Print (or write) the OIDC discovery document for ISSUER.

The document tells AWS STS where the JWKS is: jwks_uri is ISSUER/keys.json unless --jwks-uri is
given. id_token_signing_alg_values_supported lists the algorithms of the --key files (RS256 for
RSA, ES256 for P-256 ECDSA); without --key it is RS256.

ISSUER must be exactly kube-apiserver's --service-account-issuer: https://, no trailing slash.
With --out DIR, writes DIR/.well-known/openid-configuration, and DIR/keys.json too when --key is
given: upload DIR as it is to the issuer's location (docs/self-hosted.md has the commands).
"""

JWKS_DESCRIPTION = """\
Print (or write) the JSON Web Key Set for the given public keys.

Each key's kid is derived exactly as kube-apiserver derives it (unpadded base64url of the SHA-256
of the DER SubjectPublicKeyInfo), so it matches the kid in every token header and the server's own
/openid/v1/jwks. During a signing-key rotation pass the old and the new key: both are published.
With --out DIR, writes DIR/keys.json.
"""

EPILOG_DISCOVERY = """\
example:
  irsa-webhook oidc discovery --issuer https://my-bucket.s3.us-east-1.amazonaws.com/cluster1 \\
      --key ./irsa-keys/sa-signer.pub --out ./oidc
"""

EPILOG_JWKS = """\
examples:
  irsa-webhook oidc jwks --key ./irsa-keys/sa-signer.pub
  irsa-webhook oidc jwks --key old.pub --key new.pub --out ./oidc     # rotation
"""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    oidc = sub.add_parser(
        "oidc",
        help="OIDC discovery document and JWKS for the service-account issuer",
        description="The files a self-hosted service-account issuer publishes for AWS STS.",
    )
    oidc.set_defaults(func=lambda _args: usage(oidc))
    oidc_sub = oidc.add_subparsers(dest="oidc_command", metavar="SUBCOMMAND")

    discovery = oidc_sub.add_parser(
        "discovery",
        help="the .well-known/openid-configuration document",
        description=DISCOVERY_DESCRIPTION,
        epilog=EPILOG_DISCOVERY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    discovery.add_argument("--issuer", required=True, metavar="URL", help="the service-account issuer URL")
    discovery.add_argument("--jwks-uri", metavar="URL", help="where keys.json is served (default: ISSUER/keys.json)")
    discovery.add_argument("--key", action="append", default=[], metavar="PUB", help=KEY_HELP)
    discovery.add_argument("--out", metavar="DIR", help="write the files under DIR instead of printing")
    discovery.set_defaults(func=run_discovery)

    jwks_parser = oidc_sub.add_parser(
        "jwks",
        help="the JSON Web Key Set (keys.json)",
        description=JWKS_DESCRIPTION,
        epilog=EPILOG_JWKS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    jwks_parser.add_argument("--key", action="append", required=True, metavar="PUB", help=KEY_HELP)
    jwks_parser.add_argument("--out", metavar="DIR", help="write DIR/keys.json instead of printing")
    jwks_parser.set_defaults(func=run_jwks)


def load_keys(paths: Sequence[str]) -> list[PublicKey]:
    """Every public key in the given files; a note on stderr for each one read from a private key."""
    loaded = []
    for path in paths:
        for item in load_public_keys(files.read_bytes(path, "key file"), source=path):
            if item.from_private_key:
                note(f"note: {item.source} holds a private key; only its public half is used")
            loaded.append(item.key)
    return loaded


def _write(out: Path, name: str, document: JSONObject) -> None:
    path = out / name
    files.ensure_dir(path.parent)
    # Public documents: regenerating and overwriting them is the normal workflow.
    files.write_file(path, to_json(document).encode(), files.PUBLIC_MODE, force=True)
    print(f"wrote {path}")


@input_errors("oidc")
def run_discovery(args: argparse.Namespace) -> int:
    keys = load_keys(args.key)
    document = discovery_document(args.issuer, args.jwks_uri, signing_algorithms(keys))
    if (message := port_note(args.issuer)) is not None:
        note(message)
    if args.out is None:
        print(to_json(document), end="")
        return Exit.OK
    out = Path(args.out)
    _write(out, DISCOVERY_PATH, document)
    if keys:
        _write(out, JWKS_NAME, jwks(keys))
    return Exit.OK


@input_errors("oidc")
def run_jwks(args: argparse.Namespace) -> int:
    keys = load_keys(args.key)
    if not keys:
        raise InputError("no keys given")
    document = jwks(keys)
    if args.out is None:
        print(to_json(document), end="")
    else:
        _write(Path(args.out), JWKS_NAME, document)
    return Exit.OK
