"""The benchmark's reference ceiling: the webhook's own server stack serving a trivial ASGI handler.

Not a test (pytest does not collect ``bench_*`` files) and nothing happens on import. ``tests/bench.py``
runs it as a subprocess, exactly like ``irsa-webhook serve``:

    python -m tests.bench_reference --port P --metrics-port M --bind-address 127.0.0.1 \\
        --tls-cert tls.crt --tls-key tls.key

Everything but the handler is the real thing: the same ``webhook.server.run.serve`` (same uvicorn
configuration, same reloadable TLS context, the metrics server and the background tasks), the same
uvloop runner, the same JSON logging setup. The handler reads the request body and answers a small
fixed AdmissionReview, so the difference between the two servers' figures is what ``/mutate`` itself
costs: parsing, lookup, mutation, encoding, metrics and the admission log line.
"""

from __future__ import annotations

import argparse
from collections.abc import MutableMapping
from typing import Any

from webhook.observe import logs
from webhook.server.run import run_event_loop, serve
from webhook.server.tls import ServingTLS
from webhook.sources.store import IdentityStore

BODY = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"bench","allowed":true}}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def trivial_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the body, as /mutate must
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--bind-address", default="127.0.0.1")
    parser.add_argument("--tls-cert", required=True)
    parser.add_argument("--tls-key", required=True)
    parser.add_argument("--tls-min-version", default="1.2")
    args = parser.parse_args(argv)

    tls = ServingTLS(args.tls_cert, args.tls_key, args.tls_min_version)
    logs.setup(0)
    store = IdentityStore()
    store.replace_all([])  # "synced": the cache-gauge task runs as in the real server
    run_event_loop(
        serve(
            trivial_app,
            tls,
            host=args.bind_address,
            port=args.port,
            metrics_port=args.metrics_port,
            shutdown_timeout=5,
            store=store,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
