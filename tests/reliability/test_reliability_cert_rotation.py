"""Certificate rotation under load: a real server, continuous keep-alive admissions and fresh verified
handshakes, while the serving pair is rotated again and again in each write order, including
half-written states that the poller observes (a new certificate next to the old key for longer than
the poll interval). Not one request or handshake may fail, handshakes never go back to an older pair,
the keep-alive connections opened before the first rotation carry on to the end, and the newest pair
is what is served (and described by the expiry metric) afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cases import JSON_HEADERS
from tests.support.certs import (
    FAST_RELOAD,
    Pair,
    cert_then_key,
    key_then_cert,
    new_pair,
    served_serial,
    write_in_place,
)
from tests.support.paths import SAMPLE
from tests.support.server import Server, start_server
from tests.support.volumes import KubeletVolume
from tests.support.waits import wait_for
from webhook.server import devcerts

REVIEW = SAMPLE.read_bytes()
POLL = 0.1  # the server's reload interval in these tests (FAST_RELOAD)
ROTATIONS = 24
HALF_WRITTEN_EVERY = 4  # every 4th rotation pauses between its two halves for longer than the poll interval
HALF_PAUSE = 3 * POLL


class Load:
    """Keep-alive posters and a fresh-handshake prober, each in its own thread, recording failures."""

    def __init__(self, server: Server, issued: dict[int, int]) -> None:
        self.server = server
        self.issued = issued  # serial → rotation number, filled before each pair is written
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.posts = [0, 0]
        self.reconnects = [0, 0]
        self.handshakes = 0
        self.last_serial = 0
        self.threads = [threading.Thread(target=self._post, args=(i,), daemon=True) for i in range(2)]
        self.threads.append(threading.Thread(target=self._handshake, daemon=True))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()
        wait_for(lambda: min(self.posts) > 0 and self.handshakes > 0, timeout=10, what="load running")

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)

    def _post(self, index: int) -> None:
        stream = None
        with self.server.client() as client:
            while not self.stop.is_set():
                try:
                    response = client.post("/mutate", content=REVIEW, headers=JSON_HEADERS, timeout=10)
                except httpx.HTTPError as exc:
                    self.failures.append(f"poster {index}: {exc!r}")
                    continue
                if response.status_code != 200:
                    self.failures.append(f"poster {index}: HTTP {response.status_code}")
                if stream is not None and response.extensions.get("network_stream") is not stream:
                    self.reconnects[index] += 1
                stream = response.extensions.get("network_stream")
                self.posts[index] += 1

    def _handshake(self) -> None:
        newest = 0
        names = ("localhost", "127.0.0.1")  # with SNI, and without (an IP address sends none)
        while not self.stop.is_set():
            name = names[self.handshakes % 2]
            try:
                serial = served_serial(self.server.port, self.server.certs.ca, name, timeout=10)
            except OSError as exc:  # ssl.SSLError and certificate verification errors included
                self.failures.append(f"handshake ({name}): {exc!r}")
                continue
            rotation = self.issued.get(serial)
            if rotation is None:
                self.failures.append(f"handshake ({name}): unknown serial {serial:x}")
            elif rotation < newest:
                self.failures.append(f"handshake ({name}): went back from pair {newest} to pair {rotation}")
            else:
                newest = rotation
            self.last_serial = serial
            self.handshakes += 1


def rotate_in_place(first_then_second: Callable[[Path, Pair, float], None]) -> Callable[[Server, Pair, bool], None]:
    def rotate(server: Server, pair: Pair, half_written: bool) -> None:
        first_then_second(server.certs.folder, pair, HALF_PAUSE if half_written else 0.0)

    return rotate


@pytest.mark.timeout(90)
@pytest.mark.parametrize("order", ["cert-then-key", "key-then-cert", "kubelet-data-swap"])
def test_rotations_under_load_fail_nothing(tmp_path: Path, order: str) -> None:
    certs = tmp_path / "certs"
    devcerts.generate(certs)
    rotate: Callable[[Server, Pair, bool], None]
    if order == "kubelet-data-swap":
        volume = KubeletVolume.adopt(certs)  # the server is given the symlinks tls.crt -> ..data/tls.crt
        ca = (certs / "ca.crt").read_bytes()

        def swap(server: Server, pair: Pair, half_written: bool) -> None:
            if half_written:  # a Secret updated in two steps: new certificate, old key first
                volume.write({"ca.crt": ca, "tls.crt": pair.cert, "tls.key": (certs / "tls.key").read_bytes()})
                time.sleep(HALF_PAUSE)
            volume.write({"ca.crt": ca, "tls.crt": pair.cert, "tls.key": pair.key})

        rotate = swap
    else:
        rotate = rotate_in_place(cert_then_key if order == "cert-then-key" else key_then_cert)
    started = time.monotonic()
    server = start_server(tmp_path, env=FAST_RELOAD)
    try:
        issued = {server.served_serial(): 0}
        load = Load(server, issued)
        load.start()
        half_written = 0
        newest: Pair | None = None
        try:
            for rotation in range(1, ROTATIONS + 1):
                newest = new_pair(certs, days=30 + rotation)  # distinct expiry per pair
                issued[newest.serial] = rotation
                half = rotation % HALF_WRITTEN_EVERY == 1
                half_written += half
                rotate(server, newest, half)
                serial = newest.serial
                wait_for(lambda: server.served_serial() == serial, timeout=10, what=f"rotation {rotation} served")  # noqa: B023
            wait_for(lambda: load.last_serial == serial, timeout=10, what="the prober sees the newest pair")
            time.sleep(0.3)  # a little more load on the final pair
        finally:
            load.finish()
        assert newest is not None
        assert load.failures == [], load.failures[:10]
        assert not any(thread.is_alive() for thread in load.threads)
        assert min(load.posts) >= ROTATIONS, load.posts
        assert load.reconnects == [0, 0]  # each keep-alive connection served from before the first rotation to the end
        assert load.handshakes >= ROTATIONS
        assert server.served_serial() == newest.serial
        with server.client() as client:
            assert client.get("/readyz").status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
        assert _expiry(metrics) == newest.not_after
        log = server.log.read_text()
        assert log.count("reload failed") >= half_written  # the mismatched windows were really seen
        assert log.count("serving certificate reloaded") >= ROTATIONS
        assert server.proc.poll() is None
    finally:
        server.stop()
    assert time.monotonic() - started < 60


def _expiry(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "irsa_webhook_certificate_expiry_timestamp_seconds":
                return float(sample.value)
    raise AssertionError("expiry metric not exported")


def test_write_in_place_keeps_the_inode(tmp_path: Path) -> None:
    """The in-place writers really write through the same file, as ``cp`` over an existing file does."""
    path = tmp_path / "f"
    path.write_bytes(b"old")
    inode = path.stat().st_ino
    write_in_place(path, b"new")
    assert path.stat().st_ino == inode
    assert path.read_bytes() == b"new"
