"""The Kubernetes client (``webhook.kube.client``): the API server `serve` talks to for its cache, the
client's retries, and the rate limiter."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.waits import wait_for
from webhook.commands import serve
from webhook.kube.client import RateLimiter
from webhook.options.config import ServeConfig, serve_config
from webhook.options.flags import resolve
from webhook.sources.serviceaccounts import LiveLookup
from webhook.sources.store import IdentityStore


class Recorder:
    """A TCP port that counts the connections it gets and closes each at once."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone does not
        self.server.close()
        self.thread.join(2)


@pytest.fixture
def recorders() -> Iterator[tuple[Recorder, Recorder]]:
    pair = (Recorder(), Recorder())
    yield pair
    for recorder in pair:
        recorder.close()


def config_for(*argv: str) -> ServeConfig:
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", *argv])
    return serve_config(resolve(args, args.flags))


def test_kube_api_overrides_a_token_kubeconfig_for_every_request(
    tmp_path: Path, recorders: tuple[Recorder, Recorder]
) -> None:
    """The kubeconfig loader's token-refresh hook used to put the kubeconfig's server back before the
    first request, so --kube-api was ignored."""
    kube_api, kubeconfig_server = recorders
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{kubeconfig_server.port}"}}],
                "users": [{"name": "u", "user": {"token": "t0ken"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    config = config_for("--kubeconfig", str(kubeconfig), "--kube-api", f"http://127.0.0.1:{kube_api.port}")
    resolver, watcher = serve._cluster_resolver(config, IdentityStore())
    try:
        # every list is refused (closed at once), so the watcher retries: three tries, three refreshes
        wait_for(lambda: kube_api.connections >= 3, timeout=10)
        assert kubeconfig_server.connections == 0
        live = resolver.live_get
        assert isinstance(live, LiveLookup)
        assert live("n", "s") is False  # the live GET goes there too
        assert kubeconfig_server.connections == 0
        assert live._client.configuration.retries is False  # no urllib3 retries multiplying timeouts
    finally:
        watcher.stop()
        resolver.close()


def test_rate_limiter_bounds_bursts() -> None:
    limiter = RateLimiter(rate=1.0, burst=3)
    assert [limiter.allow() for _ in range(5)] == [True, True, True, False, False]
