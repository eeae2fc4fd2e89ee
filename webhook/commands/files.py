"""File I/O for the self-hosted commands, kept apart from the pure functions.

Secrets are written through :mod:`webhook.core.safefiles`, so that no other user can ever read them, even
briefly. Without ``force`` a file is created with ``O_EXCL`` (an existing file, or a symlink planted
in its place, makes it fail); with ``force`` the data goes to a temporary file that replaces the old
one atomically, so a crash never leaves a half-written key.
"""

from __future__ import annotations

import sys
from pathlib import Path

from webhook.core import safefiles
from webhook.oidc.errors import InputError

PRIVATE_MODE = 0o600  # the signing key: readable by its owner (kube-apiserver) only
PUBLIC_MODE = 0o644  # public keys, discovery document, JWKS: meant to be published


def read_bytes(path: str, what: str) -> bytes:
    """The content of ``path`` (``-`` is stdin); an unreadable file is an InputError."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def read_text(path: str, what: str) -> str:
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 text") from exc


def ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create directory {path}: {exc.strerror or exc}") from exc
    if not path.is_dir():
        raise InputError(f"{path} is not a directory")


def write_file(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Write ``data`` to ``path`` with exactly ``mode``; replace an existing file only if ``force``."""
    try:
        if force:
            safefiles.replace(path, data, mode)
        else:
            safefiles.create(path, data, mode)
    except FileExistsError as exc:
        raise InputError(f"{path} already exists; pass --force to overwrite it") from exc
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
