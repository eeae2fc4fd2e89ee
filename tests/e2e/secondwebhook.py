"""A second mutating webhook that adds a container to every pod: the reinvocation test's other party.

kube-apiserver calls webhooks in the order of their configurations' names. When this one runs after
irsa-webhook and adds a container, only `reinvocationPolicy: IfNeeded` on irsa-webhook gives that
container credentials: the API server calls irsa-webhook a second time because the pod changed.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ADDED_CONTAINER = "added-by-second-webhook"
ADDED_IMAGE = "registry.invalid/sidecar:never-pulled"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        review = json.loads(self.rfile.read(length))
        request = review["request"]
        response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
        pod = request.get("object") or {}
        names = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        if request.get("operation") == "CREATE" and ADDED_CONTAINER not in names:
            patch = [
                {
                    "op": "add",
                    "path": "/spec/containers/-",
                    "value": {"name": ADDED_CONTAINER, "image": ADDED_IMAGE},
                }
            ]
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        with self.server.lock:
            self.server.calls += 1
        body = json.dumps({"apiVersion": review["apiVersion"], "kind": review["kind"], "response": response}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test asserts on the stored pod, not on this server's access log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    calls = 0
    lock = threading.Lock()


class ContainerAddingWebhook:
    """Serves /mutate over TLS on 127.0.0.1:``port`` in a background thread until ``stop()``."""

    def __init__(self, cert: Path, key: Path) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="second-webhook", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"

    @property
    def calls(self) -> int:
        with self._server.lock:
            return self._server.calls

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
