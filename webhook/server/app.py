"""The ASGI app: ``/mutate`` on a plain ASGI route (the hot path, before any framework), health and
readiness on FastAPI. ``/readyz`` reports the identity chain's own checks, the certificate, and
whether a shutdown has started.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from webhook.admission.endpoint import Message, MutateEndpoint, Receive, Scope, Send
from webhook.server.tls import ServingTLS

log = logging.getLogger("irsa_webhook.server")

ASGIApp = Callable[[Scope, Receive, Send], Any]


class Lifecycle:
    """The process's own part of readiness: set when a shutdown starts, reported by ``/readyz``."""

    def __init__(self) -> None:
        self.draining = False


def build_app(
    endpoint: MutateEndpoint,
    tls: ServingTLS | None,
    lifecycle: Lifecycle | None = None,
    checks: Mapping[str, Callable[[], bool]] | None = None,
) -> ASGIApp:
    """FastAPI for everything that is not hot; ``/mutate`` goes straight to the endpoint. ``checks``
    are more readiness conditions by name (the self-managed certificate's)."""
    extra_checks = dict(checks or {})
    api = FastAPI(title="irsa-webhook", openapi_url=None, docs_url=None, redoc_url=None)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        # Liveness: the event loop answers. Readiness carries the real conditions.
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = endpoint.identities.checks()  # every identity source has loaded once
        checks["certificateLoaded"] = tls is None or tls.loaded
        for name, check in extra_checks.items():
            checks[name] = check()
        # Shutting down: still answering admissions, but asking to be taken out of the endpoints.
        checks["notShuttingDown"] = lifecycle is None or not lifecycle.draining
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
