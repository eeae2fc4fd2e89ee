"""A stand-in for the EKS Pod Identity agent: the node-local endpoint AWS_CONTAINER_CREDENTIALS_FULL_URI
points at, on 127.0.0.1 (botocore only sends container credential requests to loopback or AWS's
link-local agent addresses).

The real agent takes the projected ServiceAccount token the SDK sends as its ``Authorization`` header
and exchanges it with EKS (AssumeRoleForPodIdentity), which checks it and its audience
``pods.eks.amazonaws.com`` and answers with the associated role's credentials. Here the check is the
API server's own TokenReview with that audience, and the "association" is a table of ServiceAccount
→ credentials that the test fills. Every answer is recorded for the test to look at.
"""

from __future__ import annotations

import datetime
import json
import secrets
import string
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..kuberest import KubeApiError, KubeRest

POD_IDENTITY_AUDIENCE = "pods.eks.amazonaws.com"
CREDENTIALS_PATH = "/v1/credentials"


@dataclass(frozen=True)
class Answer:
    status: int
    subject: str  # the token's user as TokenReview saw it ("" when it was not authenticated)
    reason: str


def new_credentials(lifetime: datetime.timedelta = datetime.timedelta(hours=1)) -> dict[str, str]:
    """Credentials shaped as the agent returns them (the SDK's container credential format)."""
    upper = string.ascii_uppercase + string.digits
    expiration = datetime.datetime.now(datetime.UTC) + lifetime
    return {
        "AccessKeyId": "ASIA" + "".join(secrets.choice(upper) for _ in range(16)),
        "SecretAccessKey": secrets.token_urlsafe(30),
        "Token": secrets.token_urlsafe(60),
        "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        agent = self.server.agent
        if self.path != CREDENTIALS_PATH:
            self._answer(404, Answer(404, "", f"no such path {self.path}"))
            return
        token = self.headers.get("Authorization")
        if not token:
            self._answer(401, Answer(401, "", "no Authorization header"))
            return
        self._answer(*agent.exchange(token))

    def _answer(self, status: int, answer: Answer, body: dict[str, Any] | None = None) -> None:
        self.server.agent.record(answer)
        payload = json.dumps(body if body is not None else {"message": answer.reason}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test asserts on the recorded answers."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    agent: PodIdentityAgent


class PodIdentityAgent:
    """``associate(ns, sa)`` gives a ServiceAccount a role's credentials; ``url`` is the full URI."""

    def __init__(
        self,
        api_server: str,
        admin_token: str,
        ca_file: Path,
        audience: str = POD_IDENTITY_AUDIENCE,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Listens on ``host``:``port`` (a free port by default; a real node's pods reach the agent at
        169.254.170.23:80, tests/support/node puts that address on the node's bridge)."""
        self.audience = audience
        self._kube = KubeRest(api_server, admin_token, ca_file)
        self._kube_lock = threading.Lock()
        self._lock = threading.Lock()
        self._associations: dict[str, dict[str, str]] = {}
        self.answers: list[Answer] = []
        self._server = _Server((host, port), _Handler)
        self._server.agent = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = str(self._server.server_address[0]), self._server.server_address[1]
        return f"http://{host}:{port}{CREDENTIALS_PATH}"

    def start(self) -> PodIdentityAgent:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._kube.close()

    def associate(self, namespace: str, service_account: str) -> dict[str, str]:
        credentials = new_credentials()
        with self._lock:
            self._associations[f"system:serviceaccount:{namespace}:{service_account}"] = credentials
        return credentials

    def record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def exchange(self, token: str) -> tuple[int, Answer, dict[str, Any] | None]:
        """What EKS would answer for this token: (status, what to record, body)."""
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [self.audience]},
        }
        try:
            with self._kube_lock:
                result = self._kube.create("/apis/authentication.k8s.io/v1/tokenreviews", review)
        except KubeApiError as exc:
            return 500, Answer(500, "", f"TokenReview failed: {exc}"), None
        status = result.get("status") or {}
        if not status.get("authenticated") or self.audience not in (status.get("audiences") or ()):
            reason = status.get("error") or f"token is not valid for audience {self.audience}"
            return 403, Answer(403, "", reason), {"code": "AccessDeniedException", "message": reason}
        subject = str((status.get("user") or {}).get("username", ""))
        with self._lock:
            credentials = self._associations.get(subject)
        if credentials is None:
            reason = f"no Pod Identity association for {subject}"
            return 403, Answer(403, subject, reason), {"code": "AccessDeniedException", "message": reason}
        return 200, Answer(200, subject, "credentials issued"), credentials
