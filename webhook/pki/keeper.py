"""The self-managed certificate loop: every replica runs it; the Secret and the caBundle are written by
whichever replica's conditional write lands first, and every replica serves the Secret's pair.

Why the process writes the pair into its own ``--tls-cert``/``--tls-key`` files (an ``emptyDir``)
instead of mounting the Secret: a Secret volume would make the pod wait for a Secret that the pod
itself creates, and the kubelet refreshes it on its own schedule (up to a minute or more), so a
replica could start serving a new pair before the caBundle trusts it. Here each replica decides the
moment itself (:func:`~webhook.pki.state.may_serve`), and the server's file reload
(:mod:`webhook.server.tls`) picks the pair up within seconds, checking it before it swaps it in.

Failures (API errors, RBAC, a missing webhook configuration) are logged and retried with capped
exponential backoff; whatever valid pair a replica serves, it keeps serving meanwhile. When there is
no pair at all yet (the API server unreachable at the very first start), a throwaway placeholder is
served so that the process is alive (liveness) but not ready (``/readyz``), instead of a restart loop.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from webhook.core import safefiles
from webhook.kube.certobjects import CertObjects, Conflict, ca_bundle_of
from webhook.kube.objects import describe
from webhook.observe import metrics
from webhook.pki import pairs
from webhook.pki.state import Policy, State, data_of, may_serve, next_deadline, next_step, read

log = logging.getLogger("irsa_webhook.certificates")

# Steps one pass may take: a whole rotation is pending, ca-bundle, promote; the rest is slack for a
# conflict or two. A pass never loops on a writer that keeps changing the objects.
MAX_STEPS = 8
BACKOFF_START = 1.0
# Cap of the wait after failures: a fixed API server or RBAC binding is used within this.
BACKOFF_MAX = 30.0
# Never wake more often than this for a deadline (a deadline just passed must not spin).
MIN_WAIT = 0.2
DEADLINE_JITTER = 2.0
PLACEHOLDER_LIFETIME = 86400.0


class MissingConfiguration(RuntimeError):
    """The webhook configuration whose caBundle this keeps does not exist."""


class Keeper:
    """Keeps the Secret, the caBundle and this replica's certificate files in step (see the module)."""

    def __init__(
        self,
        objects: CertObjects,
        policy: Policy,
        cert_path: str,
        key_path: str,
        *,
        check_interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._objects = objects
        self._policy = policy
        self._cert = Path(cert_path)
        self._key = Path(key_path)
        self._interval = check_interval
        self._clock = clock
        # What this replica serves from its files: (sha256 of the certificate PEM, expiry); None
        # while it serves nothing real (no files, or the placeholder).
        self._served: tuple[bytes, float] | None = None
        self.placeholder_serial: int | None = None
        self._deadline: float | None = None
        self._waiting_for: bytes = b""  # the pair last logged as waiting for the caBundle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def where(self) -> str:
        return f"Secret {self._objects.namespace}/{self._objects.secret_name}"

    # -- startup -------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Before the server starts: files it can load. A pair already on disk (the ``emptyDir``
        outlives a container restart) is served as it is; then one pass against the cluster; with
        still nothing real, the placeholder."""
        try:
            self._served = pairs.load_served(self._cert.read_bytes(), self._key.read_bytes())
        except (OSError, pairs.PairError):
            self._served = None
        if self._served is not None and self._served[1] <= self._clock():
            self._served = None
        try:
            self.sync()
        except Exception as exc:
            self._failed(exc, BACKOFF_START)
        if self._served is None:
            placeholder = pairs.issue(("localhost",), PLACEHOLDER_LIFETIME, self._clock())
            self._write_files(placeholder)
            self.placeholder_serial = placeholder.serial
            log.warning(
                "self-managed certificate: no pair from %s yet; serving a placeholder, not ready until it comes",
                self.where,
            )

    # -- the loop ------------------------------------------------------------------------------------
    def start(self) -> Keeper:
        self._thread = threading.Thread(target=self._run, name="tls-keeper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = BACKOFF_START
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:
                wait = backoff * random.uniform(1.0, 1.2)  # noqa: S311 - jitter, not cryptography
                self._failed(exc, wait)
                backoff = min(backoff * 2, BACKOFF_MAX, max(self._interval, BACKOFF_START))
            else:
                backoff = BACKOFF_START
                wait = self._interval
                if self._deadline is not None:
                    # Replicas share the deadline: a little jitter lets one of them write first and
                    # the others find the step done, instead of all of them racing into a conflict.
                    jitter = random.uniform(0, min(DEADLINE_JITTER, self._interval / 2))  # noqa: S311
                    wait = min(wait, max(MIN_WAIT, self._deadline - self._clock()) + jitter)
            self._stop.wait(wait)

    def _failed(self, exc: Exception, retry_in: float) -> None:
        metrics.SELF_MANAGED_TLS_SYNC_ERRORS.inc()
        log.warning(
            "self-managed certificate: %s; retrying in %.1fs (the pair being served, if any, is kept)",
            exc if isinstance(exc, MissingConfiguration) else describe(exc),
            retry_in,
        )

    # -- one pass ------------------------------------------------------------------------------------
    def sync(self) -> None:
        """Read both objects, take the writes they need (one at a time, each re-read), then serve the
        Secret's pair if this replica may. Raises on API errors and when the configuration is missing."""
        state, configuration = State(), None
        for _ in range(MAX_STEPS):
            secret = self._objects.secret()
            configuration = self._objects.webhook_configuration()
            state = read(secret)
            for problem in state.problems:
                log.warning("self-managed certificate: %s: %s (replaced)", self.where, problem)
            step = next_step(state, self._policy, self._clock(), ca_bundle_of(configuration))
            if step is None:
                break
            if step.name == "ca-bundle" and configuration is None:  # pragma: no cover - next_step never asks
                break
            try:
                if step.name == "ca-bundle":
                    assert configuration is not None
                    self._objects.write_ca_bundle(configuration, step.bundle)
                else:
                    assert step.state is not None
                    self._objects.write_secret(secret, data_of(step.state), configuration)
            except Conflict as exc:
                metrics.SELF_MANAGED_TLS_WRITES.labels(step.name, "conflict").inc()
                log.info("self-managed certificate: %s lost to another writer (%s): reading again", step.name, exc)
                continue
            metrics.SELF_MANAGED_TLS_WRITES.labels(step.name, "written").inc()
            log.info(
                "self-managed certificate: %s",
                step.name,
                extra={"fields": {"reason": step.reason, "secret": self.where, "webhook": self._objects.webhook_name}},
            )
        self._deadline = next_deadline(state, self._policy)
        self._follow(state, ca_bundle_of(configuration))
        if configuration is None:
            raise MissingConfiguration(
                f"MutatingWebhookConfiguration {self._objects.webhook_name} not found: its caBundle cannot be "
                "kept, and a new pair is not served until it trusts it"
            )

    def _follow(self, state: State, webhook_bundle: bytes | None) -> None:
        current = state.current
        if current is None:
            return
        now = self._clock()
        if may_serve(current, self._served, webhook_bundle, now):
            self._write_files(current)
            self._served = (current.fingerprint, current.not_after)
            log.info(
                "self-managed certificate: serving the pair of %s",
                self.where,
                extra={"fields": {"serial": f"{current.serial:x}", "not_after": current.not_after}},
            )
        elif self._served is not None and self._waiting_for != current.fingerprint != self._served[0]:
            self._waiting_for = current.fingerprint
            log.info("self-managed certificate: a new pair is waiting for the caBundle to trust its CA")

    def _write_files(self, pair: pairs.Pair) -> None:
        # Key first, then certificate, each replaced whole: the server's reload only swaps in a
        # matching pair, so the moment between the two renames serves the old one.
        safefiles.replace(self._key, pair.key_pem, 0o600)
        safefiles.replace(self._cert, pair.cert_pem, 0o644)
