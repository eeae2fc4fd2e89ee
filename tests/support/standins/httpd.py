"""A threaded HTTP(S) server on 127.0.0.1 in a background thread: the one way every stand-in listens.

HTTP/1.1 with keep-alive (boto3 and httpx reuse connections), so every answer carries a
Content-Length. With TLS the handshake runs in the request's own thread, not in the accept loop: a
client that connects and never speaks must not stall every other client.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

# Long enough for a debugger pause, short enough that a half-open client cannot pin a thread forever.
SOCKET_TIMEOUT_SECONDS = 30.0
# Headers about one hop, never passed on (RFC 9110 section 7.6.1); Transfer-Encoding is passed on
# because a chunked body is relayed verbatim, chunk framing included.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "upgrade"}
)


@dataclass(frozen=True)
class Upstream:
    """An answer from the server behind a stand-in, read whole."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that speaks HTTP/1.1, logs nothing and answers with one call."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.request.settimeout(SOCKET_TIMEOUT_SECONDS)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: what a test needs is recorded by the stand-in itself."""

    def body(self) -> bytes:
        """The request body as sent: with ``Transfer-Encoding: chunked`` the chunks, framing included
        (botocore streams aws-chunked uploads that way), so that relaying it changes nothing."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _chunked(self) -> bytes:
        raw = bytearray()
        while True:
            line = self.rfile.readline(65537)
            raw += line
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                break
            raw += self.rfile.read(size + 2)  # the chunk and its CRLF
        while True:  # trailers, up to the empty line
            line = self.rfile.readline(65537)
            raw += line
            if line in (b"\r\n", b"\n", b""):
                return bytes(raw)

    def relay(self, upstream: Upstream) -> None:
        """Answer with ``upstream`` as received (a HEAD answer keeps its Content-Length)."""
        self.send_response(upstream.status)
        for name, value in upstream.headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() not in ("transfer-encoding", "content-length"):
                self.send_header(name, value)
        length = {n.lower(): v for n, v in upstream.headers}.get("content-length")
        self.send_header("Content-Length", length if self.command == "HEAD" and length else str(len(upstream.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(upstream.body)

    def forward(self, base_url: str, body: bytes) -> Upstream:
        """This request, headers (Host included: moto reads the bucket from it) and body unchanged,
        sent to ``base_url``."""
        headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
        return forward(base_url, self.command, self.path, headers, body)

    def answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None, host: str) -> None:
        self.tls_context = context
        super().__init__((host, 0), handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        if self.tls_context is None:
            return conn, address
        # The handshake is deferred to QuietHandler.setup, in the request's thread.
        return self.tls_context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up or failed the handshake is not the test's business."""


class LoopbackServer:
    """``handler`` served on a free port of 127.0.0.1 (TLS when ``context`` is given) until ``stop()``;
    also a context manager."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
    ) -> None:
        """``host``: another local address to listen on (a local node's bridge, which its pods reach)."""
        self._server = _TLSServer(handler, context, host)
        self.port = int(self._server.server_address[1])
        scheme = "https" if context is not None else "http"
        self.url = f"{scheme}://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"standin-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def forward(base_url: str, method: str, path: str, headers: dict[str, str], body: bytes) -> Upstream:
    """One request to ``base_url`` (http://host:port), answered whole."""
    target = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=SOCKET_TIMEOUT_SECONDS)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return Upstream(response.status, response.getheaders(), response.read())
    finally:
        connection.close()
