"""A volume as kubelet lays out a Secret or ConfigMap and updates it (its atomic writer).

Each file is a symlink ``NAME -> ..data/NAME``; ``..data`` points at a timestamped folder
(``..2026_01_01_00_00_00.000000001``). An update writes a new timestamped folder, points
``..data_tmp`` at it and renames that over ``..data``, then removes the old folder: readers see the
old files or the new ones, never a mix, and the path of a file itself never changes.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path


class KubeletVolume:
    def __init__(self, folder: Path, files: Mapping[str, bytes] | None = None) -> None:
        self.folder = folder
        self._count = 0
        folder.mkdir(parents=True, exist_ok=True)
        if files is not None:
            self.write(files)

    @classmethod
    def adopt(cls, folder: Path, names: tuple[str, ...] = ("ca.crt", "tls.crt", "tls.key")) -> KubeletVolume:
        """Turn the regular files ``names`` in ``folder`` into such a volume with the same content."""
        files = {name: (folder / name).read_bytes() for name in names}
        for name in files:
            (folder / name).unlink()
        return cls(folder, files)

    def write(self, files: Mapping[str, bytes]) -> None:
        """Swap in a new version holding ``files`` (the first write lays the volume out)."""
        data = self.folder / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        self._count += 1
        version = time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime()) + f".{self._count:09d}"
        (self.folder / version).mkdir()
        for name, content in files.items():
            (self.folder / version / name).write_bytes(content)
        tmp = self.folder / "..data_tmp"
        tmp.symlink_to(version)
        os.rename(tmp, data)  # atomic: readers see the old folder or the new one
        for name in files:
            if not (self.folder / name).is_symlink():
                (self.folder / name).symlink_to(Path("..data") / name)
        if old is not None:
            shutil.rmtree(self.folder / old)
