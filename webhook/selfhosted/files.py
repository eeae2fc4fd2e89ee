"""File I/O for the self-hosted commands, kept apart from the pure functions.

Secrets are written so that no other user can ever read them, even briefly: the file is created
with its final mode (``os.open(..., mode)`` plus ``fchmod``, so the umask cannot widen it).
Without ``force`` a file is created with ``O_EXCL`` (an existing file, or a symlink planted in its
place, makes it fail); with ``force`` the data goes to a temporary file that replaces the old one
atomically, so a crash never leaves a half-written key.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from webhook.selfhosted.errors import InputError

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
        if not force:
            _write_fd(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), data, mode)
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            _write_fd(fd, data, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except FileExistsError as exc:
        raise InputError(f"{path} already exists; pass --force to overwrite it") from exc
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _write_fd(fd: int, data: bytes, mode: int) -> None:
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
