"""A stand-in for the EC2 instance metadata service on 127.0.0.1, for ``--compose-role-arn`` tests.

It behaves as IMDSv2 does by default: ``PUT /latest/api/token`` needs the TTL header and returns a
token, and ``GET /latest/dynamic/instance-identity/document`` answers 401 without that token. Knobs
make it an instance with IMDSv1 allowed, an IMDS without v2 (404 on the token), one turned off (403),
one whose token replies never arrive (the hop limit a pod sits behind), or one that fails a few times.
It only ever listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_PATH = "/latest/api/token"
DOCUMENT_PATH = "/latest/dynamic/instance-identity/document"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class IMDS:
    account_id: str = "444455556666"
    region: str = "us-gov-west-1"
    require_token: bool = True  # IMDSv2 required (HttpTokens=required)
    token_status: int = 200  # 404: an IMDS without v2; 403: instance metadata turned off
    token_body: bytes | None = None  # a token other than ``token`` (None: ``token``)
    drop_token_replies: bool = False  # the PUT's answer never arrives (hop limit 1, seen from a pod)
    document_failures: int = 0  # answer the first N document requests with a 500
    document: Any = None  # a body other than the identity document (None: the real shape)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def identity_document(self) -> bytes:
        if self.document is not None:
            return self.document if isinstance(self.document, bytes) else json.dumps(self.document).encode()
        return json.dumps(
            {
                "accountId": self.account_id,
                "architecture": "x86_64",
                "availabilityZone": f"{self.region}a",
                "imageId": "ami-0123456789abcdef0",
                "instanceId": "i-0123456789abcdef0",
                "instanceType": "m5.large",
                "pendingTime": "2024-01-01T00:00:00Z",
                "privateIp": "10.0.0.10",
                "region": self.region,
                "version": "2017-09-30",
            }
        ).encode()


def _handler(imds: IMDS) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def _answer(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self) -> None:
            imds.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))

        def do_PUT(self) -> None:
            self._record()
            if self.path != TOKEN_PATH:
                self._answer(404)
            elif imds.drop_token_replies:
                imds._stop.wait(10)  # never answer while the client is waiting
            elif imds.token_status != 200:
                self._answer(imds.token_status)
            elif not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "").isdigit():
                self._answer(400)
            else:
                self._answer(200, imds.token.encode() if imds.token_body is None else imds.token_body)

        def do_GET(self) -> None:
            self._record()
            if self.path != DOCUMENT_PATH:
                self._answer(404)
                return
            token = self.headers.get("X-aws-ec2-metadata-token")
            if (token is None and imds.require_token) or (token is not None and token != imds.token):
                self._answer(401)
            elif imds.document_failures > 0:
                imds.document_failures -= 1
                self._answer(500)
            else:
                self._answer(200, imds.identity_document())

    return Handler


@contextmanager
def running_imds(**settings: Any) -> Iterator[IMDS]:
    """An IMDS stand-in on 127.0.0.1 (a free port) for the ``with`` block; ``settings`` as :class:`IMDS`."""
    imds = IMDS(**settings)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(imds))
    server.daemon_threads = True
    imds._server = server
    imds.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield imds
    finally:
        imds._stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
