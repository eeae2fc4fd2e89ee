"""The stand-in API server: plain HTTP on 127.0.0.1, just the calls the audit makes.

It serves namespaces, ServiceAccounts and pods as paginated lists (``limit`` and ``continue``, the
token being an opaque offset), single GETs of a pod, a ServiceAccount and a ConfigMap, and the Eviction
subresource; it records every request. Pods may be a plain list or generated on demand (a
``Sequence``), so that 10,000 of them never exist at once on the server side either.

Faults are scripted: ``expire`` maps a continue token to what a request carrying it gets (``inconsistent``:
a 410 with the server's inconsistent continue token, ``restart``: one without any, each once;
``always``: a 410 without a token every time), ``fail`` maps a path to a status it answers,
``evictions`` maps a pod name to the status of its eviction (0: the connection drops), and
``overrides`` replaces what a GET of one object answers (None: 404), and a request to a path of
``stall`` waits until its event is set (a hung API server).

For the code that writes: every other ``/apis/...`` path is served by ``store`` (an
:class:`~.store.ObjectStore`: create, get, list, replace, JSON and merge patches, delete, with the
API server's conflict rules); ``/openid/v1/jwks`` answers ``jwks`` (404 when None) to a client that
accepts ``application/jwk-set+json``, as kube-apiserver does (406 otherwise); a TokenRequest for a
ServiceAccount of ``service_accounts`` answers a token whose header carries ``signing_kid``.
ServiceAccounts are also written (``serviceaccounts``: create, server-side apply of annotations with
field ownership, delete with a uid precondition) in ``service_accounts``; a namespace exists when
``namespaces`` lists it, or any does when it lists none; ``forbidden`` names the RBAC verbs on
serviceaccounts the caller lacks (answered with RBAC's 403).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.support.paths import MANIFESTS

from . import serviceaccounts
from .objects import JSON, key, list_of, status
from .store import ObjectStore


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any = None  # the decoded JSON body of a write
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeCluster:
    pods: Sequence[JSON] = ()
    service_accounts: list[JSON] = field(default_factory=list)
    namespaces: list[JSON] = field(default_factory=list)  # what a namespace list returns
    config_maps: dict[tuple[str, str], JSON] = field(default_factory=dict)
    expire: dict[str, str] = field(default_factory=dict)  # continue token -> inconsistent | restart | always
    fail: dict[str, int] = field(default_factory=dict)  # path -> HTTP status
    evictions: dict[str, int] = field(default_factory=dict)  # pod name -> status (default 201)
    overrides: dict[tuple[str, str], JSON | None] = field(default_factory=dict)  # a GET's answer instead
    requests: list[Request] = field(default_factory=list)
    bytes_served: int = 0
    deleted: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # By name; the default is the shipped one (manifests/base), as the audit reads it from a cluster.
    webhook_configurations: dict[str, JSON] = field(default_factory=lambda: {"irsa-webhook": shipped_configuration()})
    store: ObjectStore = field(default_factory=ObjectStore)
    jwks: JSON | None = None  # what /openid/v1/jwks answers (None: 404)
    signing_kid: str = "fake-signing-kid"  # the kid in the header of every token issued
    stall: dict[str, threading.Event] = field(default_factory=dict)  # path -> requests wait for it (30 s at most)
    forbidden: set[str] = field(default_factory=set)  # RBAC verbs on serviceaccounts refused (get, patch, ...)

    def of_kind(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]


def shipped_configuration() -> JSON:
    """The MutatingWebhookConfiguration of manifests/base, as kube-apiserver would return it."""
    loaded: JSON = yaml.safe_load((MANIFESTS / "base" / "mutating_webhook.yaml").read_text())
    return loaded


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    body: Any = None  # the decoded JSON body of the request being handled

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
        return

    def _send(self, code: int, body: JSON | bytes, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with self.server.cluster.lock:
            self.server.cluster.bytes_served += len(data)

    def do_GET(self) -> None:
        self.body = None  # one handler serves every request of a kept-alive connection
        self._handle("GET")

    def do_POST(self) -> None:
        self._read_body()
        self._handle("POST")

    def do_PUT(self) -> None:
        self._read_body()
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._read_body()
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._read_body()
        self._handle("DELETE")

    def _read_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = json.loads(self.rfile.read(length) or b"{}")

    def _handle(self, method: str) -> None:
        cluster = self.server.cluster
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with cluster.lock:
            cluster.requests.append(Request(method, url.path, query, self.body, dict(self.headers)))
        if url.path in cluster.stall:
            cluster.stall[url.path].wait(30)
        if url.path in cluster.fail:
            code = cluster.fail[url.path]
            self._send(code, status(code, f"{url.path} is scripted to fail"))
            return
        parts = url.path.strip("/").split("/")
        if url.path == "/openid/v1/jwks":
            self._jwks()
            return
        if parts[0] == "apis" and parts[1:2] != ["admissionregistration.k8s.io"]:
            content_type = self.headers.get("Content-Type") or ""
            code, answer = cluster.store.handle(method, url.path, query, self.body, content_type)
            self._send(code, answer)
            return
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) in (5, 6) and parts[4] == "serviceaccounts":
            answer = self._service_account(method, parts[3], parts[5] if len(parts) == 6 else None, query)
            if answer is not None:
                self._send(*answer)
                return
        code, body = self._route(method, parts, query)
        if code == 0:  # scripted: the connection drops without an answer
            self.close_connection = True
            return
        self._send(code, body)

    def _route(self, method: str, parts: list[str], query: dict[str, str]) -> tuple[int, JSON]:
        cluster = self.server.cluster
        if parts == ["debug", "requests"]:  # for a test that runs this server in a process of its own
            with cluster.lock:
                logged = [vars(r) for r in cluster.requests if r.path != "/debug/requests"]
                return 200, {"requests": logged, "bytesServed": cluster.bytes_served}
        if parts[:4] == ["apis", "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations"]:
            configuration = cluster.webhook_configurations.get(parts[4]) if len(parts) == 5 else None
            if configuration is None:
                return 404, status(404, "mutatingwebhookconfiguration not found")
            return 200, configuration
        if parts[:2] != ["api", "v1"]:
            return 404, status(404, "not found")
        rest = parts[2:]
        if rest == ["namespaces"]:
            return self._list(cluster.namespaces, query, "NamespaceList")
        if rest == ["serviceaccounts"]:
            return self._list(cluster.service_accounts, query, "ServiceAccountList")
        if rest == ["pods"]:
            return self._list(_Live(cluster), query, "PodList")
        if len(rest) == 3 and rest[0] == "namespaces":
            namespace, kind = rest[1], rest[2]
            if kind == "serviceaccounts":
                items = [s for s in cluster.service_accounts if s["metadata"]["namespace"] == namespace]
                return self._list(items, query, "ServiceAccountList")
            if kind == "pods":
                items = [p for p in _Live(cluster) if p["metadata"]["namespace"] == namespace]
                return self._list(items, query, "PodList")
        if len(rest) == 4 and rest[0] == "namespaces":
            namespace, kind, name = rest[1], rest[2], rest[3]
            found: JSON | None
            if (kind, name) in cluster.overrides:
                found = cluster.overrides[(kind, name)]
            elif kind == "pods":
                found = next((p for p in _Live(cluster) if key(p) == (namespace, name)), None)
            elif kind == "serviceaccounts":
                found = next((s for s in cluster.service_accounts if key(s) == (namespace, name)), None)
            elif kind == "configmaps":
                found = cluster.config_maps.get((namespace, name))
            else:
                found = None
            if found is None:
                return 404, status(404, f'{kind} "{name}" not found')
            return 200, found
        if len(rest) == 5 and rest[0] == "namespaces" and rest[2] == "pods" and rest[4] == "eviction":
            return self._evict(rest[1], rest[3])
        if len(rest) == 5 and rest[0] == "namespaces" and rest[2] == "serviceaccounts" and rest[4] == "token":
            return self._token(rest[1], rest[3])
        return 404, status(404, "not found")

    def _service_account(
        self, method: str, namespace: str, name: str | None, query: dict[str, str]
    ) -> tuple[int, JSON] | None:
        """A ServiceAccount request refused by RBAC, or a write; None: a read, served by ``_route``."""
        cluster = self.server.cluster
        verb = {"GET": "list" if name is None else "get", "POST": "create", "PATCH": "patch", "DELETE": "delete"}
        if verb.get(method) in cluster.forbidden:
            return 403, _forbidden(verb[method], namespace, name)
        if method == "GET":
            return None
        if cluster.namespaces and namespace not in {n["metadata"]["name"] for n in cluster.namespaces}:
            body = status(404, f'namespaces "{namespace}" not found')
            body.update(reason="NotFound", details={"name": namespace, "kind": "namespaces"})
            return 404, body
        manager = query.get("fieldManager", "")
        with cluster.lock:
            items = cluster.service_accounts
            if method == "POST" and name is None:
                return serviceaccounts.create(items, namespace, self.body, manager)
            if method == "PATCH" and name and "apply-patch" in (self.headers.get("Content-Type") or ""):
                if query.get("force") == "true":
                    return 422, status(422, "the fake API server does not take fields over (force=true)")
                return serviceaccounts.apply(items, namespace, name, self.body, manager)
            if method == "DELETE" and name:
                return serviceaccounts.delete(items, namespace, name, self.body)
        return 405, status(405, f"the fake API server does not serve {method} of serviceaccounts")

    def _jwks(self) -> None:
        jwks = self.server.cluster.jwks
        if "application/jwk-set+json" not in (self.headers.get("Accept") or ""):
            self._send(406, b"406: Not Acceptable", "text/plain")
        elif jwks is None:
            self._send(404, status(404, "the page could not be found"))
        else:
            self._send(200, json.dumps(jwks).encode(), "application/jwk-set+json")

    def _token(self, namespace: str, name: str) -> tuple[int, JSON]:
        cluster = self.server.cluster
        if not any(key(s) == (namespace, name) for s in cluster.service_accounts if "namespace" in s["metadata"]):
            return 404, status(404, f'serviceaccounts "{name}" not found')
        header = {"alg": "RS256", "kid": cluster.signing_kid}
        parts = [json.dumps(header).encode(), b'{"sub":"fake"}', b"not-a-signature"]
        token = ".".join(base64.urlsafe_b64encode(part).decode().rstrip("=") for part in parts)
        answer = dict(self.body, status={"token": token, "expirationTimestamp": "2026-01-01T00:10:00Z"})
        return 201, answer

    def _list(self, items: Sequence[JSON], query: dict[str, str], kind: str) -> tuple[int, JSON]:
        cluster = self.server.cluster
        token = query.get("continue", "")
        with cluster.lock:
            fault = cluster.expire.get(token) if token else None
            if fault is not None and fault != "always":
                del cluster.expire[token]
        if fault == "inconsistent":
            return 410, status(410, "The provided continue parameter is too old", **{"continue": token})
        if fault in ("restart", "always"):
            return 410, status(410, "The provided continue parameter is too old")
        start = int(token) if token else 0
        limit = int(query.get("limit", "0") or 0) or len(items)
        end = min(start + limit, len(items))
        page = [items[i] for i in range(start, end)]
        return 200, list_of(page, "100", str(end) if end < len(items) else "", kind)

    def _evict(self, namespace: str, name: str) -> tuple[int, JSON]:
        cluster = self.server.cluster
        code = cluster.evictions.get(name, 201)
        if code == 0:
            return 0, {}
        if code != 201:
            return code, status(code, f"eviction of {name} scripted to answer {code}")
        precondition = self.body.get("deleteOptions", {}).get("preconditions", {}).get("uid")
        current = next((p for p in _Live(cluster) if key(p) == (namespace, name)), None)
        if current is None:
            return 404, status(404, f'pods "{name}" not found')
        if precondition and precondition != current["metadata"]["uid"]:
            return 409, status(409, "Precondition failed: UID in precondition does not match")
        if "dryRun" not in self.path:
            with cluster.lock:
                cluster.deleted.add((namespace, name))
        return 201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}


def _forbidden(verb: str, namespace: str, name: str | None) -> JSON:
    """RBAC's refusal, worded as kube-apiserver words it."""
    subject = f'serviceaccounts "{name}"' if name else "serviceaccounts"
    message = (
        f'{subject} is forbidden: User "system:serviceaccount:irsa-webhook:irsa-webhook-provisioner" cannot {verb} '
        f'resource "serviceaccounts" in API group "" in the namespace "{namespace}"'
    )
    body = status(403, message)
    body.update(reason="Forbidden", details={"name": name or "", "kind": "serviceaccounts"})
    return body


class _Live(Sequence[JSON]):
    """The pods not evicted (a view; generated pods stay generated)."""

    def __init__(self, cluster: FakeCluster) -> None:
        self._pods = cluster.pods
        self._deleted = cluster.deleted
        self._kept = (
            [i for i in range(len(self._pods)) if key(self._pods[i]) not in self._deleted] if self._deleted else None
        )

    def __len__(self) -> int:
        return len(self._pods) if self._kept is None else len(self._kept)

    def __getitem__(self, index: Any) -> Any:
        return self._pods[index if self._kept is None else self._kept[index]]

    def __iter__(self) -> Iterator[JSON]:
        return (self[i] for i in range(len(self)))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cluster: FakeCluster) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.cluster = cluster


class FakeApiServer:
    """``with FakeApiServer(cluster) as api:`` serves ``cluster`` at ``api.url`` until the block ends."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self._server = _Server(cluster)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="fake-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def kubeconfig(self, folder: Path) -> Path:
        path = folder / "fake.kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "auditor", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "auditor"}}],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def api_client(self, folder: Path) -> Any:
        """A kubernetes ApiClient for this server, built as the commands build theirs (no retries)."""
        from webhook.kube.client import api_client

        return api_client(str(self.kubeconfig(folder)))

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
