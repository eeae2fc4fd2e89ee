"""Certificate rotation against a real server process: the last valid pair is served until a complete,
matching new pair is on disk, whatever order the writer uses, and the expiry metric follows the pair
actually served. Plus the in-process guarantee that what is served is exactly the bytes inspected.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cases import JSON_HEADERS
from tests.support.certs import FAST_RELOAD, Pair, new_pair, served_serial, write_in_place
from tests.support.paths import EXAMPLE_ACCOUNTS, SAMPLE
from tests.support.server import Server, start_server
from tests.support.volumes import KubeletVolume
from tests.support.waits import wait_for
from webhook.server import devcerts
from webhook.server.tls import ServingTLS

REVIEW = SAMPLE.read_bytes()
EXPIRY = "irsa_webhook_certificate_expiry_timestamp_seconds"


def expiry_metric(server: Server) -> float:
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == EXPIRY:
                return float(sample.value)
    raise AssertionError(f"{EXPIRY} not exported")


def reload_failures(server: Server) -> int:
    return server.log.read_text().count("reload failed")


def assert_serving(server: Server, pair: Pair, kept_alive: httpx.Client) -> None:
    """Fresh verified handshakes, with SNI and without (an IP address), get ``pair``; the old keep-alive
    connection and a fresh client both work; /readyz is 200; the expiry metric is ``pair``'s."""
    for name in ("localhost", "127.0.0.1"):
        assert served_serial(server.port, server.certs.ca, name) == pair.serial, name
    assert kept_alive.post("/mutate", content=REVIEW, headers=JSON_HEADERS).status_code == 200
    with server.client() as fresh:
        assert fresh.get("/readyz").status_code == 200
        assert fresh.post("/mutate", content=REVIEW, headers=JSON_HEADERS).status_code == 200
    assert expiry_metric(server) == pair.not_after


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path, env=FAST_RELOAD)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.parametrize("first", ["tls.crt", "tls.key"], ids=["cert-then-key", "key-then-cert"])
def test_in_place_rotation_serves_the_old_pair_until_the_new_one_is_complete(plain_server: Server, first: str) -> None:
    server = plain_server
    certs = server.certs.folder
    old = Pair(b"", b"", server.served_serial(), expiry_metric(server))
    new = new_pair(certs, days=30)
    second = "tls.key" if first == "tls.crt" else "tls.crt"
    with server.client() as kept_alive:
        assert kept_alive.post("/mutate", content=REVIEW, headers=JSON_HEADERS).status_code == 200
        failures = reload_failures(server)
        # Half a rotation: the poller sees a pair that does not match and must keep the old one.
        write_in_place(certs / first, new.cert if first == "tls.crt" else new.key)
        wait_for(lambda: reload_failures(server) > failures, timeout=10, what="the mismatched pair seen by the poller")
        assert_serving(server, old, kept_alive)
        write_in_place(certs / second, new.cert if second == "tls.crt" else new.key)
        wait_for(lambda: server.served_serial() == new.serial, timeout=10, what="the complete new pair served")
        assert_serving(server, new, kept_alive)
    assert server.proc.poll() is None


def test_kubelet_data_swap_serves_the_old_pair_until_the_new_one_is_complete(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    devcerts.generate(certs)
    volume: KubeletVolume = KubeletVolume.adopt(certs)
    assert (certs / "tls.crt").is_symlink()
    ca = (certs / "ca.crt").read_bytes()
    old_key = (certs / "tls.key").read_bytes()
    server = start_server(tmp_path, env=FAST_RELOAD)  # --tls-cert/--tls-key are the symlinks
    try:
        old = Pair(b"", b"", server.served_serial(), expiry_metric(server))
        new = new_pair(certs, days=30)
        with server.client() as kept_alive:
            assert kept_alive.post("/mutate", content=REVIEW, headers=JSON_HEADERS).status_code == 200
            failures = reload_failures(server)
            # A Secret updated in two steps: the first ..data swap brings the new cert with the old key.
            volume.write({"ca.crt": ca, "tls.crt": new.cert, "tls.key": old_key})
            wait_for(
                lambda: reload_failures(server) > failures, timeout=10, what="the mismatched pair seen by the poller"
            )
            assert_serving(server, old, kept_alive)
            volume.write({"ca.crt": ca, "tls.crt": new.cert, "tls.key": new.key})
            wait_for(lambda: server.served_serial() == new.serial, timeout=10, what="the complete new pair served")
            assert_serving(server, new, kept_alive)
            # and an ordinary one-step rotation right after
            newer = new_pair(certs, days=40)
            volume.write({"ca.crt": ca, "tls.crt": newer.cert, "tls.key": newer.key})
            wait_for(lambda: server.served_serial() == newer.serial, timeout=10, what="the next pair served")
            assert_serving(server, newer, kept_alive)
        assert server.proc.poll() is None
    finally:
        server.stop()


# --- in process: the pair served is the pair described ---------------------------------------------


class FifoWriter(threading.Thread):
    """Serves successive contents to successive readers of named pipes: each open of a path gets the
    next bytes queued for it. A reader that opens a file twice sees two different files, as it would
    if a writer replaced the file between the two reads."""

    def __init__(self, steps: list[tuple[Path, bytes]]) -> None:
        super().__init__(daemon=True)
        self.steps = steps
        self.stop = threading.Event()
        self.served = 0

    def run(self) -> None:
        for path, data in self.steps:
            fd = -1
            while fd < 0:
                if self.stop.is_set():
                    return
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until a reader opens it
                except OSError:
                    self.stop.wait(0.005)
            try:
                os.set_blocking(fd, True)
                os.write(fd, data)
            finally:
                os.close(fd)
            self.served += 1


def in_process_serial(context: ssl.SSLContext) -> int:
    """Handshake over memory buffers, without SNI; the serial of the certificate the server sent."""
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(c_in, c_out)
    server = context.wrap_bio(s_in, s_out, server_side=True)
    done = set()
    for _ in range(10):
        for side, obj, out, peer in (("c", client, c_out, s_in), ("s", server, s_out, c_in)):
            try:
                obj.do_handshake()
                done.add(side)
            except ssl.SSLWantReadError:
                pass
            peer.write(out.read())
        if done == {"c", "s"}:
            break
    der = client.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_reload_serves_and_describes_the_same_bytes(tmp_path: Path) -> None:
    """The reload reads each file once: if the files change between the read that describes the pair
    and a second read that loads it, the metric and not_after would describe one certificate while
    handshakes get another."""
    first = devcerts.generate(tmp_path / "first", days=5)
    pair_a = devcerts.generate(tmp_path / "a", days=10)
    pair_b = devcerts.generate(tmp_path / "b", days=20)
    live = tmp_path / "live"
    live.mkdir()
    cert, key = live / "tls.crt", live / "tls.key"
    cert.write_bytes(first.cert.read_bytes())
    key.write_bytes(first.key.read_bytes())
    tls = ServingTLS(str(cert), str(key))
    cert.unlink()
    key.unlink()
    os.mkfifo(cert)
    os.mkfifo(key)
    writer = FifoWriter(
        [
            (cert, pair_a.cert.read_bytes()),
            (key, pair_a.key.read_bytes()),
            (cert, pair_b.cert.read_bytes()),
            (key, pair_b.key.read_bytes()),
        ]
    )
    writer.start()
    try:
        assert tls.reload()
    finally:
        writer.stop.set()
        writer.join(5)
    served = in_process_serial(tls.context)
    described = x509.load_pem_x509_certificate(pair_a.cert.read_bytes())
    assert served == described.serial_number
    assert tls.not_after == described.not_valid_after_utc.timestamp()
    assert REGISTRY.get_sample_value(EXPIRY) == tls.not_after
    assert writer.served == 2  # each file was read exactly once


def test_mismatched_pair_leaves_the_served_context_untouched(tmp_path: Path) -> None:
    """In process, without a poller: a failed reload changes neither handshakes nor what is described."""
    files = devcerts.generate(tmp_path / "certs")
    tls = ServingTLS(str(files.cert), str(files.key))
    before = in_process_serial(tls.context)
    not_after = tls.not_after
    other = devcerts.generate(tmp_path / "other")
    files.cert.write_bytes(other.cert.read_bytes())  # new certificate, old key
    with pytest.raises(ssl.SSLError):
        tls.reload()
    assert in_process_serial(tls.context) == before
    assert tls.not_after == not_after
    assert tls.loaded
    assert not tls.reload()  # the same broken bytes are not retried
    files.key.write_bytes(other.key.read_bytes())
    assert tls.reload()
    assert in_process_serial(tls.context) == x509.load_pem_x509_certificate(other.cert.read_bytes()).serial_number


def test_encrypted_key_is_refused_without_prompting(tmp_path: Path) -> None:
    """OpenSSL's default for an encrypted key is to prompt for a pass phrase and wait on the terminal or
    stdin: at startup that hangs the pod, at reload it would block the event loop. It must just fail."""
    files = devcerts.generate(tmp_path / "certs")
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    files.key.write_bytes(encrypted)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webhook",
            "serve",
            "--port=0",
            f"--tls-cert={files.cert}",
            f"--tls-key={files.key}",
            f"--service-accounts={EXAMPLE_ACCOUNTS}",
        ],
        stdin=subprocess.PIPE,  # open, never written: a prompt reading it would wait forever
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # no controlling terminal
    )
    try:
        _, stderr = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        raise AssertionError(f"serve waited for a pass phrase: {stderr.decode()}") from None
    finally:
        if proc.stdin:
            proc.stdin.close()
    assert proc.returncode == 2, stderr.decode()
    assert "cannot load TLS certificate" in stderr.decode()
    assert b"pass phrase" not in stderr
