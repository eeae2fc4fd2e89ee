"""The controller's plain-HTTP endpoints: ``/healthz``, ``/readyz`` and ``/metrics``, on the standard
library's HTTP server in a thread of its own (nothing here needs an event loop).

Each listening socket serves the paths it is given, so health and metrics can share one port or
have one each.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# A check answers (healthy, one line saying why not).
Check = Callable[[], tuple[bool, str]]
Route = Callable[[], tuple[int, str, bytes]]  # -> (status, content type, body)
TEXT = "text/plain; charset=utf-8"


def check_route(check: Check) -> Route:
    """A probe: 200 ``ok``, or 503 and the reason."""

    def route() -> tuple[int, str, bytes]:
        healthy, reason = check()
        return (200, TEXT, b"ok\n") if healthy else (503, TEXT, f"{reason}\n".encode())

    return route


def metrics_route() -> tuple[int, str, bytes]:
    return 200, CONTENT_TYPE_PLAIN_0_0_4, generate_latest(REGISTRY)


class _Handler(BaseHTTPRequestHandler):
    server: ProbeServer

    def log_message(self, format: str, *args: Any) -> None:
        """Probes and scrapes are not logged (the base class writes each one to stderr)."""

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            status, content_type, body = 404, TEXT, b"404 page not found\n"
        else:
            status, content_type, body = route()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET


class ProbeServer(ThreadingHTTPServer):
    """Serves ``routes`` (path -> route) on ``sock``, an already listening socket."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, routes: Mapping[str, Route]) -> None:
        self.address_family = sock.family
        self._listener = sock
        self.routes = dict(routes)
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=True)

    def server_bind(self) -> None:
        # Take the socket given (dual-stack or not, as --bind-address said) instead of binding one.
        self.socket.close()
        self.socket = self._listener
        self.socket.setblocking(True)
        self.server_address = self.socket.getsockname()
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def server_activate(self) -> None:
        """Already listening."""

    def start(self) -> ProbeServer:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="probes", daemon=True).start()
        return self
