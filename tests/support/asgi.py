"""The composed ASGI app in-process, and requests to it without sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from webhook.admission.endpoint import MutateEndpoint
from webhook.core.settings import Settings
from webhook.server.app import build_app
from webhook.sources.chain import IdentityChain
from webhook.sources.manifests import load_manifests
from webhook.sources.resolver import Resolver
from webhook.sources.store import IdentityStore

from .paths import EXAMPLE_ACCOUNTS


def example_store(settings: Settings | None = None) -> IdentityStore:
    """A ready store holding the example ServiceAccounts (webhook-demo/app and friends)."""
    store = IdentityStore()
    store.replace_all(load_manifests([EXAMPLE_ACCOUNTS], settings or Settings()))
    return store


def example_endpoint(settings: Settings | None = None, max_body: int = 8 << 20) -> MutateEndpoint:
    """The /mutate endpoint over the example ServiceAccounts."""
    settings = settings or Settings()
    return MutateEndpoint(Resolver(example_store(settings)), settings, max_body)


def example_app(settings: Settings | None = None, max_body: int = 8 << 20) -> Any:
    """The app over the example ServiceAccounts."""
    return build_app(example_endpoint(settings, max_body), None)


def app_of(lookup: Resolver | IdentityChain, settings: Settings | None = None, max_body: int = 8 << 20) -> Any:
    """The app as ``serve`` composes it around ``lookup`` (no TLS reloader)."""
    return build_app(MutateEndpoint(lookup, settings or Settings(), max_body), None)


def request(app: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    """One request to ``app`` through httpx's ASGI transport (no sockets)."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://webhook") as client:
            return await client.request(method, path, **kw)

    return asyncio.run(go())
