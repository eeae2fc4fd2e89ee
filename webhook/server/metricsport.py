"""The plain-HTTP metrics port: Prometheus text, and upstream's ``/debug/alpha/cache`` when asked for.

It runs on the standard library's WSGI server in a thread of its own, on a socket from
:mod:`webhook.server.listen`: nothing here needs uvicorn or an event loop, so any application (the
webhook, a controller, the audit) can expose its metrics the same way.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from webhook.core.records import Identity
from webhook.observe import metrics
from webhook.sources.store import Key


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (the base class writes each one to stderr)."""


class _MetricsServer(ThreadingMixIn, WSGIServer):
    """prometheus_client's WSGI app on a socket of ours (its start_http_server binds IPv4 or IPv6, not both)."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, debug_cache: CacheSnapshot | None = None) -> None:
        self.address_family = sock.family
        self._listener = sock
        super().__init__(sock.getsockname()[:2], _QuietHandler)
        self.set_app(metrics_app(debug_cache))

    def server_bind(self) -> None:
        # Take our socket instead of binding the one socketserver made, and skip HTTPServer's
        # reverse DNS lookup of the address (getfqdn), which only names the server in WSGI environs.
        self.socket.close()
        self.socket = self._listener
        self.socket.setblocking(True)
        self.server_address = self.socket.getsockname()
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])
        self.setup_environ()

    def server_activate(self) -> None:
        """Already listening (see :func:`listen`)."""


DEBUG_CACHE_PATH = "/debug/alpha/cache"
CacheSnapshot = Callable[[], Mapping[Key, Identity]]
WSGIStart = Callable[[str, list[tuple[str, str]]], Any]
# Go's encoding/json writes these escaped; upstream's cache dump is made with it.
_GO_JSON_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def metrics_app(debug_cache: CacheSnapshot | None = None) -> Callable[[dict[str, Any], WSGIStart], Iterable[bytes]]:
    """The metrics port's WSGI app: ``/debug/alpha/cache`` when ``--enable-debugging-handlers`` gave it a
    snapshot to dump (404 otherwise, as upstream), and the metrics on every other path.

    The metrics are always in Prometheus text format 0.0.4 (:func:`webhook.observe.metrics.exposition`), gzipped
    when the scraper accepts it.
    """

    def app(environ: dict[str, Any], start_response: WSGIStart) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == DEBUG_CACHE_PATH:
            if debug_cache is None:
                start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
                return [b"404 page not found\n"]
            body = cache_json(debug_cache())
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "OPTIONS":
            start_response("200 OK", [("Allow", "OPTIONS,GET")])
            return [b""]
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "OPTIONS,GET")])
            return [f"# HTTP 405 Method Not Allowed: {method}; use OPTIONS or GET\n".encode()]
        body = metrics.exposition()
        headers = [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    return app


def cache_json(items: Mapping[Key, Identity]) -> bytes:
    """Upstream's ``/debug/alpha/cache`` body: ``{"ns/name": {"RoleARN", "Audience", "UseRegionalSTS",
    "TokenExpiration"}}``, keys sorted and one-space indents, as Go's ``json.MarshalIndent(m, "", " ")``."""
    entries = {
        f"{namespace}/{name}": {
            "RoleARN": identity.role_arn,
            "Audience": identity.audience,
            "UseRegionalSTS": identity.sts_regional_endpoints,
            "TokenExpiration": identity.token_expiration,
        }
        for (namespace, name), identity in items.items()
    }
    text = json.dumps(dict(sorted(entries.items())), indent=1, ensure_ascii=False)
    for char, escaped in _GO_JSON_ESCAPES:
        text = text.replace(char, escaped)
    return text.encode()


def start_metrics(sock: socket.socket, debug_cache: CacheSnapshot | None = None) -> _MetricsServer:
    server = _MetricsServer(sock, debug_cache)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server
