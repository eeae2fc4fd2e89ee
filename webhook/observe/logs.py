"""Structured logging: one JSON object per line on stderr."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


_admission_log = logging.getLogger("irsa_webhook.admission")


def _timestamp(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created * 1000) % 1000:03d}Z"


def admission(fields: dict[str, Any]) -> None:
    """The one line per admission, written straight to stderr in the same JSON shape.

    It bypasses the logging machinery (record creation, caller lookup, formatter: ~30 µs, measured
    by ``make bench``) because it is written once per request; the logger's level still governs it.
    """
    if not _admission_log.isEnabledFor(logging.INFO):
        return
    entry = {"ts": _timestamp(time.time()), "level": "info", "logger": _admission_log.name, "msg": "admission"}
    entry.update(fields)
    try:
        line = orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        # Callers pass scalars and lists of strings; should anything else slip in, the line keeps
        # its place with each field shown by type rather than failing the request it describes.
        line = orjson.dumps(
            {k: v if isinstance(v, str | int | float | bool | None) else type(v).__name__ for k, v in entry.items()},
            option=orjson.OPT_APPEND_NEWLINE,
        )
    stream = sys.stderr.buffer
    stream.write(line)
    stream.flush()


def setup(verbosity: int = 0) -> None:
    """klog's ``-v``: 0-3 info, 4 and above debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbosity >= 4 else logging.INFO)
    # The kubernetes client logs every request at DEBUG; keep it at WARNING unless -v=6 or more.
    logging.getLogger("kubernetes").setLevel(logging.DEBUG if verbosity >= 6 else logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbosity >= 6 else logging.WARNING)
