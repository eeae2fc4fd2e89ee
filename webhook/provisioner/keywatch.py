"""Notice a key rotation on the control plane within a minute, not at the next hourly resync.

A rotation changes nothing the controller watches: the IRSAIssuer objects stay as they are, only
kube-apiserver's ``/openid/v1/jwks`` and the key it signs with change. So the key set is polled (one
GET and one TokenRequest per interval, no AWS call) and every object is reconciled when what kube-apiserver
says differs from the last reading: a new key is published within ``interval`` of the restart that
added it, and ``SigningKeyPublished`` turns False at once when the signer is switched too early.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from webhook.kube.issuerkeys import IssuerKeys

log = logging.getLogger("irsa_webhook.provisioner")

DEFAULT_INTERVAL = 60.0


def fingerprint(keys: IssuerKeys) -> tuple[tuple[str, ...], str | None] | None:
    """What a rotation changes: the kids verified with and the kid signed with; None when unreadable
    (an unreadable reading is no news: the reconcile itself reports it)."""
    if keys.jwks is None:
        return None
    entries = keys.jwks.get("keys")
    kids = sorted(str(e.get("kid")) for e in entries if isinstance(e, dict)) if isinstance(entries, list) else []
    return tuple(kids), keys.signing_kid


class KeyWatch:
    """Every ``interval`` seconds, ``read()``; ``changed()`` when the fingerprint moved."""

    def __init__(self, read: Callable[[], IssuerKeys], changed: Callable[[], None], interval: float) -> None:
        self._read = read
        self._changed = changed
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: tuple[tuple[str, ...], str | None] | None = None

    def poll(self) -> bool:
        """One reading; True when it differs from the last readable one (and ``changed`` was called)."""
        current = fingerprint(self._read())
        if current is None or current == self.last:
            return False
        first, self.last = self.last is None, current
        if first:
            return False  # the first reading is the baseline: the objects are reconciled at start anyway
        log.info("kube-apiserver's keys changed (verifying %s, signing %s): reconciling every issuer", *current)
        self._changed()
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="provisioner-keywatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        while True:
            try:
                self.poll()
            except Exception:  # never let a surprise end the watch: the next interval tries again
                log.exception("reading kube-apiserver's keys failed")
            if self._stop.wait(self._interval):
                return
