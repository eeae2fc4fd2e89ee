"""Serving over HTTPS until a signal, with a shutdown that behaves like Go's.

Shutdown (SIGTERM or SIGINT): ``/readyz`` answers 503 at once while everything else keeps being
served for ``--shutdown-delay``, so kube-apiserver and the Service's endpoints stop routing here
first. Then the listeners close, idle keep-alive connections are closed at once, requests in flight
finish (bounded by ``--shutdown-timeout``) and their connections close after the response, as Go's
``Server.Shutdown`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn

from webhook.observe import metrics
from webhook.server.app import ASGIApp, Lifecycle
from webhook.server.listen import ListenError, bind_address, listen
from webhook.server.metricsport import CacheSnapshot, start_metrics
from webhook.server.tls import ServingTLS
from webhook.sources.store import IdentitySource

log = logging.getLogger("irsa_webhook.server")

# How often the shutdown looks at its connections: a closed connection is released within this.
_SHUTDOWN_POLL = 0.02


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
