"""The HTTPS server: ``/mutate`` on a plain ASGI route, health and readiness on FastAPI, metrics on
their own plain-HTTP port, TLS reloaded in place, graceful SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import start_http_server

from webhook import metrics
from webhook.cache import IdentitySource
from webhook.handler import MutateEndpoint, Receive, Scope, Send
from webhook.tlsconfig import ServingTLS

log = logging.getLogger("irsa_webhook.server")

ASGIApp = Callable[[Scope, Receive, Send], Any]


def build_app(endpoint: MutateEndpoint, store: IdentitySource, tls: ServingTLS | None) -> ASGIApp:
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
        }
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/mutate":
            await endpoint(scope, receive, send)
        else:
            await api(scope, receive, send)

    return app


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown, which ends the process with status 143.

    A webhook pod should exit 0 after a clean shutdown, so we only ask the server to exit.
    """

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
        if not self.should_exit:
            log.info("signal %s received: finishing in-flight requests", signal.Signals(sig).name)
        super().handle_exit(sig, frame)


async def serve(
    app: ASGIApp,
    tls: ServingTLS,
    *,
    host: str,
    port: int,
    metrics_port: int,
    shutdown_timeout: float,
    store: IdentitySource,
) -> None:
    # Read at scrape time from whichever source fills the store (watch, manifests, live GETs):
    # no copy of the figures to keep in step.
    metrics.CACHE_SIZE.set_function(lambda: len(store))
    metrics.CACHE_SYNCED.set_function(lambda: 1 if store.ready else 0)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,  # our one admission line per request replaces it
        lifespan="off",
        timeout_graceful_shutdown=max(1, int(shutdown_timeout)),
        # kube-apiserver keeps connections alive between admissions; don't drop them early.
        timeout_keep_alive=75,
        server_header=False,
    )
    config.load()
    config.ssl = tls.context  # ours: reloadable, with the configured minimum version and ciphers
    metrics_server, _ = start_http_server(metrics_port, addr=host)
    reload_task = asyncio.create_task(tls.watch())
    server = _Server(config)
    try:
        await server.serve()
    finally:
        reload_task.cancel()
        metrics_server.shutdown()
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
