"""``irsa-webhook keys generate``: the service-account signing key pair for kube-apiserver."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from webhook.commands import files
from webhook.commands.common import Exit, input_errors, usage
from webhook.oidc.errors import InputError
from webhook.oidc.jwks import key_id
from webhook.oidc.keys import generate_key_pair, load_public_keys

PRIVATE_NAME = "sa-signer.key"
PUBLIC_NAME = "sa-signer.pub"

DESCRIPTION = """\
Generate the key pair kube-apiserver signs service-account tokens with.

Writes DIR/sa-signer.key (PKCS#8 private key, mode 0600) for
  --service-account-signing-key-file
and DIR/sa-signer.pub (SubjectPublicKeyInfo "PUBLIC KEY", mode 0644) for
  --service-account-key-file and for `irsa-webhook oidc jwks --key`.
Existing files are never overwritten unless --force is given: replacing the signing key makes
every token already issued unverifiable (see the rotation section of docs/self-hosted.md).
"""

EPILOG = """\
examples:
  irsa-webhook keys generate --out ./irsa-keys
  irsa-webhook keys generate --out ./irsa-keys --type ec     # ECDSA P-256, tokens use ES256
"""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    keys = sub.add_parser(
        "keys",
        help="generate the service-account signing key pair",
        description="Service-account signing keys for self-hosted clusters.",
    )
    keys.set_defaults(func=lambda _args: usage(keys))
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    generate = keys_sub.add_parser(
        "generate",
        help="write sa-signer.key and sa-signer.pub",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    generate.add_argument("--out", required=True, metavar="DIR", help="directory to write the keys to (created)")
    generate.add_argument(
        "--type",
        choices=("rsa", "ec"),
        default="rsa",
        help="rsa: RSA-2048, tokens signed RS256 (default); ec: ECDSA P-256, tokens signed ES256",
    )
    generate.add_argument("--force", action="store_true", help="overwrite existing key files")
    generate.set_defaults(func=run_generate)


@input_errors("keys")
def run_generate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    private_path, public_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    if not args.force:
        # Check both before writing either: never leave a new private key next to an old public one.
        for path in (private_path, public_path):
            if path.exists() or path.is_symlink():
                raise InputError(f"{path} already exists; pass --force to overwrite it")
    pair = generate_key_pair(args.type)
    files.ensure_dir(out)
    files.write_file(private_path, pair.private_pem, files.PRIVATE_MODE, args.force)
    files.write_file(public_path, pair.public_pem, files.PUBLIC_MODE, args.force)
    kid = key_id(load_public_keys(pair.public_pem)[0].key)
    print(f"wrote {private_path} (private signing key, mode 0600)")
    print(f"wrote {public_path} (public key, mode 0644)")
    print(f"kid {kid}")
    return Exit.OK
