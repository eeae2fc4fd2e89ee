"""Certificate rotations as real writers perform them, and TLS probes that tell which pair is served.

Three write orders: the certificate then the key, the key then the certificate (both written in
place, as ``cp`` does: truncate, then write the same inode), and kubelet's atomic Secret volume
update (files are symlinks ``tls.crt -> ..data/tls.crt``; ``..data`` points at a timestamped
directory and is replaced by renaming a new symlink over it).
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from webhook.server import devcerts

SAMPLE_PATH = Path(__file__).resolve().parents[1] / "samples" / "admissionreview-pod.json"
JSON = {"content-type": "application/json"}
# Short enough that many rotations fit in a test; read by the server at startup.
FAST_RELOAD = {"IRSA_WEBHOOK_TLS_RELOAD_INTERVAL": "0.1"}
POLL = 0.1


@dataclass(frozen=True)
class Pair:
    cert: bytes
    key: bytes
    serial: int
    not_after: float


def new_pair(ca_folder: Path, days: int = 365) -> Pair:
    """A new key and certificate signed by the CA in ``ca_folder`` (for 127.0.0.1, ::1 and localhost)."""
    ca_cert, ca_key = devcerts.load_ca(ca_folder)
    cert, key = devcerts.issue(ca_cert, ca_key, days=days)
    parsed = x509.load_pem_x509_certificate(cert)
    return Pair(cert, key, parsed.serial_number, parsed.not_valid_after_utc.timestamp())


def write_in_place(path: Path, data: bytes) -> None:
    with path.open("r+b" if path.exists() else "wb") as fh:
        fh.truncate(0)
        fh.write(data)


def cert_then_key(folder: Path, pair: Pair, pause: float = 0.0) -> None:
    write_in_place(folder / "tls.crt", pair.cert)
    time.sleep(pause)
    write_in_place(folder / "tls.key", pair.key)


def key_then_cert(folder: Path, pair: Pair, pause: float = 0.0) -> None:
    write_in_place(folder / "tls.key", pair.key)
    time.sleep(pause)
    write_in_place(folder / "tls.crt", pair.cert)


class KubeletVolume:
    """A Secret volume as kubelet lays it out and updates it."""

    def __init__(self, folder: Path, files: dict[str, bytes]) -> None:
        self.folder = folder
        self._count = 0
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "..data").symlink_to(self._write_version(files))
        for name in files:
            (folder / name).symlink_to(Path("..data") / name)

    def _write_version(self, files: dict[str, bytes]) -> str:
        self._count += 1
        name = time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime()) + f".{self._count:09d}"
        version = self.folder / name
        version.mkdir()
        for file, data in files.items():
            (version / file).write_bytes(data)
        return name

    def update(self, files: dict[str, bytes]) -> None:
        old = os.readlink(self.folder / "..data")
        new = self._write_version(files)
        tmp = self.folder / "..data_tmp"
        tmp.symlink_to(new)
        os.rename(tmp, self.folder / "..data")
        shutil.rmtree(self.folder / old)

    def swap(self, pair: Pair, ca: bytes) -> None:
        self.update({"ca.crt": ca, "tls.crt": pair.cert, "tls.key": pair.key})


def kubelet_layout(folder: Path) -> KubeletVolume:
    """Turn the regular files devcerts wrote in ``folder`` into a kubelet-style volume with the same content."""
    files = {name: (folder / name).read_bytes() for name in ("ca.crt", "tls.crt", "tls.key")}
    for name in files:
        (folder / name).unlink()
    return KubeletVolume(folder, files)


def handshake_serial(port: int, cafile: Path, server_hostname: str, timeout: float = 5) -> int:
    """Serial of the certificate served to a new, verified connection; ``127.0.0.1`` sends no SNI."""
    context = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.05)
