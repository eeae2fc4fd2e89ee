"""The HTTPS server: ``/mutate`` on a plain ASGI route, health and readiness on FastAPI, metrics on
their own plain-HTTP port, TLS reloaded in place, and a shutdown that behaves like Go's.

Listening: both ports are dual-stack by default (one IPv6 socket with ``IPV6_V6ONLY`` off also takes
IPv4 connections, as Go's ``:443`` does); ``0.0.0.0`` or a specific address narrows it.

Shutdown (SIGTERM or SIGINT): ``/readyz`` answers 503 at once while everything else keeps being
served for ``--shutdown-delay``, so kube-apiserver and the Service's endpoints stop routing here
first. Then the listeners close, idle keep-alive connections are closed at once, requests in flight
finish (bounded by ``--shutdown-timeout``) and their connections close after the response, as Go's
``Server.Shutdown`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gzip
import json
import logging
import signal
import socket
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from webhook import metrics
from webhook.cache import IdentitySource, Key
from webhook.handler import Message, MutateEndpoint, Receive, Scope, Send
from webhook.tlsconfig import ServingTLS
from webhook.types import Identity

log = logging.getLogger("irsa_webhook.server")

ASGIApp = Callable[[Scope, Receive, Send], Any]

# How often the shutdown looks at its connections: a closed connection is released within this.
_SHUTDOWN_POLL = 0.02


class Lifecycle:
    """The process's own part of readiness: set when a shutdown starts, reported by ``/readyz``."""

    def __init__(self) -> None:
        self.draining = False


def build_app(
    endpoint: MutateEndpoint, store: IdentitySource, tls: ServingTLS | None, lifecycle: Lifecycle | None = None
) -> ASGIApp:
    """FastAPI for everything that is not hot; ``/mutate`` goes straight to the endpoint."""
    api = FastAPI(title="irsa-webhook", openapi_url=None, docs_url=None, redoc_url=None)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        # Liveness: the event loop answers. Readiness carries the real conditions.
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = {
            "serviceAccountCacheSynced": store.ready,
            "certificateLoaded": tls is None or tls.loaded,
            # Shutting down: still answering admissions, but asking to be taken out of the endpoints.
            "notShuttingDown": lifecycle is None or not lifecycle.draining,
        }
        config_map = endpoint.identities.config_map
        if config_map is not None:  # --watch-config-map: its first list has completed
            checks["configMapSynced"] = config_map.ready
        pod_identity = endpoint.identities.pod_identity
        if pod_identity is not None:  # --watch-container-credentials-config: its file was read once
            checks["containerCredentialsConfigLoaded"] = pod_identity.ready
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if lifecycle is not None and lifecycle.draining:
            send = _closing_connection(send)
        if scope["type"] == "http" and scope["path"] == "/mutate":
            await endpoint(scope, receive, send)
        else:
            await api(scope, receive, send)

    return app


def _closing_connection(send: Send) -> Send:
    """While draining, every answer says ``Connection: close`` (Go's ``SetKeepAlivesEnabled(false)``):
    a pooled client opens its next connection afresh, and a fresh connection goes where the Service
    routes now, whereas a kept-alive one would stay pinned to this pod until the listener closes."""

    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
        await send(message)

    return send_closing


# --- listening ---------------------------------------------------------------------------------------
class ListenError(OSError):
    """A port cannot be listened on; the message is one line naming the address."""


@dataclass(frozen=True, slots=True)
class BindAddress:
    """Where both ports listen: a family, an address, and whether an IPv6 socket also takes IPv4."""

    family: socket.AddressFamily
    sockaddr: tuple[Any, ...]  # as getaddrinfo gives it (an IPv6 one carries flowinfo and scope id)
    dual_stack: bool = False

    def at(self, port: int) -> tuple[Any, ...]:
        return (self.sockaddr[0], port, *self.sockaddr[2:])

    def show(self, port: int) -> str:
        host = self.sockaddr[0]
        text = f"[{host}]:{port}" if self.family == socket.AF_INET6 else f"{host}:{port}"
        return text + (" (IPv4 and IPv6)" if self.dual_stack else "")


def bind_address(host: str) -> BindAddress:
    """What ``--bind-address`` means: unset or ``::`` dual-stack (IPv4 only on a host without IPv6),
    ``0.0.0.0`` IPv4 only, anything else that one address (a host name: its first address)."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host in ("", "::"):
        if _ipv6_works():
            return BindAddress(socket.AF_INET6, ("::", 0, 0, 0), dual_stack=True)
        log.warning("this host has no IPv6: listening on IPv4 only (0.0.0.0)")
        return BindAddress(socket.AF_INET, ("0.0.0.0", 0))  # noqa: S104 - a pod serves on its IPs
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ListenError(f"--bind-address {host!r} is not an address of this host: {exc}") from None
    return BindAddress(family, sockaddr)


def _ipv6_works() -> bool:
    """Whether a dual-stack socket can be made: no on a kernel without IPv6 (``ipv6.disable=1``)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            probe.bind(("::", 0))
    except OSError:
        return False
    return True


def listen(address: BindAddress, port: int) -> socket.socket:
    """A bound, listening TCP socket for ``address`` and ``port``; ListenError with the reason."""
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if address.family == socket.AF_INET6:
            # Set either way: the system default (net.ipv6.bindv6only) differs between hosts.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if address.dual_stack else 1)
        sock.bind(address.at(port))
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRNOTAVAIL:
            reason += " (not an address of this host)"
        raise ListenError(f"cannot listen on {address.show(port)}: {reason}") from None
    sock.setblocking(False)
    return sock


# --- metrics -----------------------------------------------------------------------------------------
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
    snapshot to dump (404 otherwise), and the metrics on every other path, as before.

    The metrics are always in Prometheus text format 0.0.4 (:func:`webhook.metrics.exposition`), gzipped
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


# --- the HTTPS server --------------------------------------------------------------------------------
class _Server(uvicorn.Server):
    """uvicorn with Go's shutdown semantics.

    uvicorn's own shutdown asks each connection to close and then waits for all of them to be gone.
    A TLS connection's close sends close_notify and waits for the peer's close_notify before the
    connection counts as closed (asyncio and uvloop wait up to 30 s), and an idle keep-alive client
    never sends one: kube-apiserver's pooled connections, or any client that is not reading. So every
    SIGTERM waited the whole graceful timeout. Here a connection that is closing (idle at shutdown, or
    done with its last response) is dropped as soon as what it had to send has gone out, without
    waiting for the peer, which is what Go's ``tls.Conn.Close`` does.

    uvicorn also re-raises SIGTERM after its shutdown, which ends the process with status 143; a
    webhook pod should exit 0 after a clean shutdown, so signals only ask the server to stop.
    """

    def __init__(self, config: uvicorn.Config, *, lifecycle: Lifecycle, delay: float, timeout: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.shutdown_delay = delay
        self.shutdown_timeout = timeout

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def handle_exit(self, sig: int, frame: Any) -> None:
        name = signal.Signals(sig).name
        if not self.lifecycle.draining:
            self.lifecycle.draining = True
            if self.shutdown_delay > 0:
                log.info(
                    "%s received: /readyz answers 503, still serving for %gs before shutting down",
                    name,
                    self.shutdown_delay,
                )
                asyncio.get_running_loop().call_later(self.shutdown_delay, self._end_delay)
                return
            log.info("%s received: shutting down", name)
        elif not self.should_exit:
            log.info("%s received again: shutting down now", name)
        self.should_exit = True

    def _end_delay(self) -> None:
        if not self.should_exit:
            log.info("shutdown delay over: shutting down")
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_timeout
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        state = self.server_state
        idle = sum(1 for c in state.connections if _idle(c))
        log.info(
            "listener closed: closing idle connections, waiting for requests in flight",
            extra={"fields": {"idle_connections": idle, "in_flight": len(state.tasks)}},
        )
        while state.connections or state.tasks:
            for connection in list(state.connections):
                transport = connection.transport
                if not transport.is_closing():
                    # Idle: closes now. Busy: answers with "Connection: close" and closes after it.
                    # Repeated each round, so a connection that got idle since is closed too.
                    connection.shutdown()
                if transport.is_closing() and not transport.get_write_buffer_size():
                    transport.abort()  # close_notify already sent; don't wait for the peer's
            if loop.time() >= deadline:
                break
            await asyncio.sleep(_SHUTDOWN_POLL)
        if state.tasks:
            log.warning(
                "shutdown timeout: closing connections with requests still in flight",
                extra={"fields": {"in_flight": len(state.tasks), "timeout_s": self.shutdown_timeout}},
            )
        for connection in list(state.connections):
            connection.transport.abort()
        # A request whose connection is gone reads a disconnect and ends by itself; cancel what does not.
        await _settle(lambda: bool(state.tasks), 0.5)
        for task in list(state.tasks):
            task.cancel()
        await _settle(lambda: bool(state.connections or state.tasks), 1.0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                for server in self.servers:
                    await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


async def _settle(busy: Callable[[], bool], timeout: float) -> None:
    """Wait (at most ``timeout`` s) for ``busy`` to turn false: transports report connection_lost later."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while busy() and loop.time() < deadline:
        await asyncio.sleep(_SHUTDOWN_POLL)


def _idle(connection: Any) -> bool:
    """No request being answered: uvicorn's HTTP/1.1 protocols keep the current one as ``cycle``."""
    cycle = getattr(connection, "cycle", None)
    return cycle is None or bool(getattr(cycle, "response_complete", True))


async def serve(
    app: ASGIApp,
    tls: ServingTLS,
    *,
    host: str,
    port: int,
    metrics_port: int,
    shutdown_timeout: float,
    store: IdentitySource,
    shutdown_delay: float = 0.0,
    lifecycle: Lifecycle | None = None,
    debug_cache: CacheSnapshot | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT. Raises ListenError (before serving anything) if a port cannot be had."""
    # Read at scrape time from whichever source fills the store (watch, manifests, live GETs):
    # no copy of the figures to keep in step.
    metrics.CACHE_SIZE.set_function(lambda: len(store))
    metrics.CACHE_SYNCED.set_function(lambda: 1 if store.ready else 0)
    metrics.UPSTREAM.used_probe = lambda: len(store) > 0
    address = bind_address(host)
    https_socket = listen(address, port)
    try:
        metrics_socket = listen(address, metrics_port)
    except ListenError:
        https_socket.close()
        raise
    log.info(
        "listening",
        extra={
            "fields": {
                "https": address.show(https_socket.getsockname()[1]),
                "metrics": address.show(metrics_socket.getsockname()[1]),
            }
        },
    )
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,  # our one admission line per request replaces it
        lifespan="off",
        # kube-apiserver keeps connections alive between admissions; don't drop them early.
        timeout_keep_alive=75,
        server_header=False,
    )
    config.load()
    config.ssl = tls.context  # ours: reloadable, with the configured minimum version and ciphers
    metrics_server = start_metrics(metrics_socket, debug_cache)
    reload_task = asyncio.create_task(tls.watch())
    server = _Server(
        config,
        lifecycle=lifecycle or Lifecycle(),
        delay=shutdown_delay,
        timeout=shutdown_timeout,
    )
    try:
        await server.serve(sockets=[https_socket])
    finally:
        reload_task.cancel()
        metrics_server.shutdown()
        metrics_server.server_close()
        https_socket.close()
    log.info("server stopped")


def run_event_loop(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` on uvloop (from uvicorn[standard]: a faster loop for the hot path) if present."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - plain asyncio works, just slower
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)
