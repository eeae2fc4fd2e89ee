"""Small real servers on 127.0.0.1 for the clients the provisioner uses: a static HTTPS document
server (an issuer's documents) and an HTTP CONNECT proxy that records the tunnels it opens (what
``HTTPS_PROXY`` makes a client use)."""

from __future__ import annotations

import select
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .certs import Certs, serving_pki


class _Documents(ThreadingHTTPServer):
    daemon_threads = True
    documents: dict[str, tuple[int, bytes]]
    requests: list[str]


class _DocumentHandler(BaseHTTPRequestHandler):
    server: _Documents

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        status, body = self.server.documents.get(self.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class DocumentServer:
    """``https://127.0.0.1:PORT``: serves ``documents[path] = (status, body)``; ``certs.ca`` verifies it."""

    def __init__(self, folder: Path) -> None:
        self.certs: Certs = serving_pki(folder)
        self._server = _Documents(("127.0.0.1", 0), _DocumentHandler)
        self._server.documents = {}
        self._server.requests = []
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.certs.cert), str(self.certs.key))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def documents(self) -> dict[str, tuple[int, bytes]]:
        return self._server.documents

    @property
    def requests(self) -> list[str]:
        return self._server.requests

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True
    tunnels: list[str]


class _ConnectHandler(BaseHTTPRequestHandler):
    server: _Proxy

    def do_CONNECT(self) -> None:
        self.server.tunnels.append(self.path)
        host, _, port = self.path.rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10)
        except OSError:
            self.send_error(502)
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        sockets = [self.connection, upstream]
        with upstream:
            while True:
                readable, _, _ = select.select(sockets, [], [], 10)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def connect_proxy() -> Iterator[tuple[str, list[str]]]:
    """An HTTP CONNECT proxy on 127.0.0.1: yields its URL and the list of tunnels it opened."""
    server = _Proxy(("127.0.0.1", 0), _ConnectHandler)
    server.tunnels = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.tunnels
    finally:
        server.shutdown()
        server.server_close()
