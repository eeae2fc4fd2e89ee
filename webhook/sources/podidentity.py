"""EKS Pod Identity: the ServiceAccounts listed in ``--watch-container-credentials-config``.

The file is what EKS mounts for its webhook, usually a ConfigMap or Secret volume::

    {"identities": [{"namespace": "default", "serviceAccount": "app"}, ...]}

Read as Go's ``encoding/json`` reads it into upstream's struct: field names match case-insensitively,
unknown fields are ignored, ``null`` means "nothing", and a value of the wrong type fails the whole
file. Matches are exact (no globs). A missing or empty file (whitespace only counts as empty) means
no identities; a malformed one keeps the previous set, with a log line and a metric.

The file is polled and its **bytes** compared, as the serving certificate is: a ConfigMap volume is
updated by the kubelet renaming a new ``..data`` symlink over the old one, so the file's own path
never sees an event and its symlink's mtime never changes, but its content does [ours: upstream
watches the path for events and misses those updates]. A poll is one small read every couple of
seconds, on a thread of its own; lookups only read a dict that each reload replaces whole.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from webhook.core import gojson
from webhook.core.records import CONTAINER_CREDENTIALS, Identity
from webhook.core.settings import Settings
from webhook.observe import metrics
from webhook.options.flags import env_seconds

log = logging.getLogger("irsa_webhook.pod_identity")

SOURCE_NAME = "pod-identity"
RELOAD_INTERVAL = 2.0
# Not a flag: tests poll faster.
RELOAD_INTERVAL_ENV = "IRSA_WEBHOOK_CONTAINER_CREDENTIALS_RELOAD_INTERVAL"
# A ConfigMap holds at most 1 MiB; anything much larger is not this file.
MAX_FILE_BYTES = 8 << 20
_JSON_WHITESPACE = " \t\n\r"


class IdentitiesFileError(ValueError):
    """The identities file cannot be used; the message says why, in one line."""


def parse_identities(content: bytes) -> frozenset[tuple[str, str]]:
    """The (namespace, serviceAccount) pairs the file lists; IdentitiesFileError when it is malformed."""
    # Go replaces invalid UTF-8 inside strings with U+FFFD, and anywhere else it is a syntax error:
    # decoding with replacement first gives both.
    text = content.decode("utf-8", errors="replace")
    if not text.strip(_JSON_WHITESPACE):
        return frozenset()
    try:
        document = gojson.loads(text)
    except ValueError as exc:
        raise IdentitiesFileError(f"not valid JSON: {' '.join(str(exc).split())}") from None
    if document is None:
        return frozenset()
    if not isinstance(document, gojson.Object):
        raise IdentitiesFileError(f"expected a JSON object with an identities list, got a {gojson.type_name(document)}")
    identities = gojson.field(document, "identities")
    if identities is None:
        return frozenset()
    if not isinstance(identities, list) or isinstance(identities, gojson.Object):
        raise IdentitiesFileError(f"identities must be a list, got a {gojson.type_name(identities)}")
    pairs = set()
    for index, entry in enumerate(identities):
        if entry is None:
            continue  # Go leaves a zero entry, which no pod matches
        if not isinstance(entry, gojson.Object):
            raise IdentitiesFileError(f"identities[{index}] must be an object, got a {gojson.type_name(entry)}")
        names = []
        for name in ("namespace", "serviceAccount"):
            value = gojson.field(entry, name)
            if value is None:
                value = ""
            elif not isinstance(value, str):
                raise IdentitiesFileError(
                    f"identities[{index}].{name} must be a string, got a {gojson.type_name(value)}"
                )
            names.append(value)
        pairs.add((names[0], names[1]))
    return frozenset(pairs)


def reload_interval() -> float:
    """Seconds between polls of the identities file: RELOAD_INTERVAL unless the environment says otherwise."""
    return env_seconds(RELOAD_INTERVAL_ENV, RELOAD_INTERVAL)


def read_once(path: str | Path, settings: Settings) -> PodIdentityFile:
    """The identities file read once, for the commands that judge pods from a snapshot (``audit``,
    offline ``mutate``). Unlike ``serve``, which keeps serving what it has, a snapshot taken from a
    file that cannot be read would be wrong: OSError or IdentitiesFileError."""
    path = Path(path)
    with path.open("rb") as f:
        content = f.read(MAX_FILE_BYTES + 1)
    if len(content) > MAX_FILE_BYTES:
        raise IdentitiesFileError(f"larger than {MAX_FILE_BYTES} bytes")
    source = PodIdentityFile(path, settings)
    source.replace(parse_identities(content))
    return source


class PodIdentityFile:
    """The Pod Identity source of the identity chain (``webhook.sources.chain``).

    ``lookup`` answers for a listed pair with an :class:`Identity` in ``CONTAINER_CREDENTIALS`` mode
    carrying the flags' regional STS and token lifetime; the chain replaces those by the
    ServiceAccount's own when it has annotations. ``reload`` reads the file once (it never raises);
    ``start`` does that on a thread, at once and then every ``interval`` seconds, until ``stop``.
    """

    name = SOURCE_NAME

    def __init__(self, path: str | Path, settings: Settings, interval: float | None = None) -> None:
        self.path = Path(path)
        self.settings = settings
        self.interval = reload_interval() if interval is None else interval
        self._identities: dict[tuple[str, str], Identity] = {}
        self._applied: bytes | None = None  # the content the current set came from (None: missing)
        self._loaded = False  # a content was applied once (the empty set of a missing file included)
        self._failed: str | bytes | None = None  # the last failure, logged and counted once
        self._ready = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        """True once the file was read once, whatever it held: a broken file must not keep every replica
        out of service (the last good set, or none, is served and the problem is logged and counted)."""
        return self._ready

    @property
    def identities(self) -> frozenset[tuple[str, str]]:
        return frozenset(self._identities)

    def lookup(self, namespace: str, service_account: str) -> Identity | None:
        return self._identities.get((namespace, service_account))

    def replace(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Serve exactly ``pairs`` from now on (one reference swap: lookups see the old or the new set)."""
        settings = self.settings
        self._identities = {
            (namespace, name): Identity(
                namespace=namespace,
                name=name,
                audience=settings.container_credentials_audience,
                sts_regional_endpoints=settings.sts_regional_endpoint,
                token_expiration=settings.token_expiration,
                mode=CONTAINER_CREDENTIALS,
                source=SOURCE_NAME,
            )
            for namespace, name in pairs
        }
        metrics.CONTAINER_CREDENTIALS_IDENTITIES.set(len(self._identities))

    def reload(self) -> bool:
        """Read the file and serve what it lists if it changed; True when the set was replaced."""
        try:
            return self._reload()
        finally:
            self._ready = True

    def _reload(self) -> bool:
        try:
            content = self._read()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            self._fail(f"cannot read {self.path}: {reason}", "unreadable", f"{type(exc).__name__}: {reason}")
            return False
        if self._loaded and content == self._applied:
            self._failed = None  # back to the good content: a new failure is worth a line again
            return False
        try:
            pairs = parse_identities(content or b"")
        except IdentitiesFileError as exc:
            self._fail(f"{self.path}: {exc}", "malformed", content or b"")
            return False
        self.replace(pairs)
        self._applied = content
        self._loaded = True
        self._failed = None
        log.info(
            "container credentials config loaded",
            extra={"fields": {"path": str(self.path), "identities": len(pairs), "missing": content is None}},
        )
        return True

    def _read(self) -> bytes | None:
        """The file's bytes through any symlinks; None when it is missing (or a dangling link)."""
        try:
            with self.path.open("rb") as f:
                content = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        if len(content) > MAX_FILE_BYTES:
            raise OSError(f"larger than {MAX_FILE_BYTES} bytes")
        return content

    def _fail(self, message: str, reason: str, key: str | bytes) -> None:
        if key == self._failed:
            return  # the same problem as the last poll: already logged and counted
        self._failed = key
        metrics.CONTAINER_CREDENTIALS_CONFIG_ERRORS_BY_REASON[reason].inc()
        log.warning(
            "container credentials config not loaded, keeping the previous identities: %s",
            message,
            extra={"fields": {"path": str(self.path), "identities": len(self._identities), "reason": reason}},
        )

    def start(self) -> PodIdentityFile:
        """Poll on a daemon thread: the first read at once, then every ``interval`` seconds."""
        self._thread = threading.Thread(target=self._run, name="pod-identity-file", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                self.reload()
            except Exception:  # a bug, not input: keep polling, the next read may work
                log.exception("container credentials config poll failed")
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
