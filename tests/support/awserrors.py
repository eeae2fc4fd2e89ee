"""An AWS endpoint on 127.0.0.1 that answers every request with one real AWS error response.

For the errors moto does not produce: S3's MalformedPolicy (moto stores any bucket policy, even one
that is not JSON), throttling, 5xx. The bodies are AWS's own shapes (S3's ``<Error>`` document, the
query APIs' ``<ErrorResponse>``), so botocore parses them exactly as it parses AWS, retries included:
``seen`` counts the attempts that arrived.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def s3_error(code: str, message: str) -> bytes:
    """S3's (REST-XML) error document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>4442587FB7D0A2F9</RequestId><HostId>example-host-id</HostId></Error>"
    ).encode()


def query_error(code: str, message: str, sender: bool = True) -> bytes:
    """The error document of the query APIs (IAM, STS)."""
    kind = "Sender" if sender else "Receiver"
    return (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        f"<Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>b5b3ab4f-0000-4000-8000-000000000000</RequestId></ErrorResponse>"
    ).encode()


@dataclass
class ErrorEndpoint:
    status: int
    body: bytes
    url: str = ""
    seen: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of each request


def _handler(endpoint: ErrorEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            endpoint.seen.append((self.command, self.path))
            self.send_response(endpoint.status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(endpoint.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(endpoint.body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer

    return Handler


@contextmanager
def error_endpoint(status: int, body: bytes) -> Iterator[ErrorEndpoint]:
    """An endpoint answering ``status`` with ``body`` to everything, for the ``with`` block."""
    endpoint = ErrorEndpoint(status, body)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(endpoint))
    server.daemon_threads = True
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
