"""Writing files that may hold private material, so that no other user can ever read them, even briefly.

A file is created with its final mode (``os.open(..., mode)`` plus ``fchmod``, so the umask can
neither widen nor narrow it) and never written through an existing inode: :func:`replace` puts the
data in a new temporary file next to the target and renames it over the target, so an old file that
was world-readable (or owned by someone else, or a planted symlink) never holds the new bytes, and a
crash never leaves a half-written key. :func:`create` refuses to touch anything already there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def create(path: Path, data: bytes, mode: int) -> None:
    """Write a new file; an existing file or symlink at ``path`` raises :class:`FileExistsError`."""
    _write_fd(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode), data, mode)


def replace(path: Path, data: bytes, mode: int) -> None:
    """Atomically replace (or create) ``path`` with ``data`` at exactly ``mode``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600, O_EXCL
    try:
        _write_fd(fd, data, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_fd(fd: int, data: bytes, mode: int) -> None:
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
