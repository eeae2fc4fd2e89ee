"""Structure-aware AdmissionReview fuzzing: the real samples, damaged the way hostile callers do it.

A fuzzed body starts from one of the real kube-apiserver samples and gets a few edits, each at a
random place of its JSON tree or at one of the places the webhook reads (names, annotations, env,
mounts, volumes, the envelope): a value replaced by a wrong type, null, a value nested far deeper than
any encoder writes, a number past 64 bits, odd Unicode; a key removed or added. Some bodies also get
bytes that are not UTF-8. Deep values and huge numbers cannot go through a JSON encoder, so they are
written as placeholders and spliced into the encoded text.

:func:`drive` sends one body through the real ASGI app (no sockets, no framework test client: the
same callable uvicorn calls) and returns status and JSON answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import orjson
from hypothesis import strategies as st

from tests.support import paths
from tests.support.cases import load_sample

SAMPLES = [load_sample(p) for p in sorted(paths.SAMPLES.glob("*.json"))]
PREFIX = "eks.amazonaws.com"


class Splice:
    """A value written into the body as raw text (deep nesting, numbers past 64 bits)."""

    _count = 0

    def __init__(self, text: bytes) -> None:
        Splice._count += 1
        self.text = text
        self.marker = f"__splice_{Splice._count}__"

    def __repr__(self) -> str:  # hypothesis prints failing examples
        return f"Splice({self.text[:40]!r}{'...' if len(self.text) > 40 else ''})"


def deep(depth: int, leaf: bytes = b'"x"', open_: bytes = b"[", close: bytes = b"]") -> Splice:
    return Splice(open_ * depth + leaf + close * depth)


def encode(value: Any) -> bytes:
    spliced: list[Splice] = []

    def default(obj: Any) -> Any:
        if isinstance(obj, Splice):
            spliced.append(obj)
            return obj.marker
        raise TypeError(type(obj).__name__)

    body = orjson.dumps(value, default=default)
    for item in spliced:
        body = body.replace(b'"' + item.marker.encode() + b'"', item.text, 1)
    return body


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", " ", "0", "-1", "600", "true", "CREATE", "Pod", "v1", "aws-iam-token", "app", "web"])
    | st.sampled_from(["\u0663\u0666\u0660\u0660", "\uff13\uff16\uff10\uff10", "\u202e", "\ud7ff", "\U0001f600"])
)
hostile = (
    scalars
    | st.builds(lambda n: Splice(str(n).encode()), st.integers(2**64, 10**40))  # past int64 and uint64
    | st.builds(lambda n: Splice(b"9" * n), st.integers(20, 6000))  # 5,000-digit numbers
    | st.builds(lambda n: Splice(b"1e" + str(n).encode()), st.integers(300, 400))  # floats to infinity
    | st.builds(deep, st.integers(200, 1020))
    | st.builds(lambda n: deep(n, b"{}", b'{"a":', b"}"), st.integers(200, 1020))
    | st.lists(scalars, max_size=3)
    | st.dictionaries(st.text(max_size=8), scalars, max_size=3)
)

# Where the webhook looks; "*" is any index of a list (picked at random when the list exists).
HOT_PATHS: list[tuple[Any, ...]] = [
    ("apiVersion",),
    ("kind",),
    ("request",),
    ("request", "uid"),
    ("request", "kind"),
    ("request", "kind", "kind"),
    ("request", "operation"),
    ("request", "namespace"),
    ("request", "name"),
    ("request", "dryRun"),
    ("request", "subResource"),
    ("request", "object"),
    ("request", "object", "metadata"),
    ("request", "object", "metadata", "name"),
    ("request", "object", "metadata", "generateName"),
    ("request", "object", "metadata", "annotations"),
    ("request", "object", "metadata", "annotations", f"{PREFIX}/token-expiration"),
    ("request", "object", "metadata", "annotations", f"{PREFIX}/skip-containers"),
    ("request", "object", "spec"),
    ("request", "object", "spec", "serviceAccountName"),
    ("request", "object", "spec", "serviceAccount"),
    ("request", "object", "spec", "nodeSelector"),
    ("request", "object", "spec", "os"),
    ("request", "object", "spec", "volumes"),
    ("request", "object", "spec", "volumes", "*"),
    ("request", "object", "spec", "volumes", "*", "name"),
    ("request", "object", "spec", "volumes", "*", "projected", "sources"),
    ("request", "object", "spec", "containers"),
    ("request", "object", "spec", "containers", "*"),
    ("request", "object", "spec", "containers", "*", "name"),
    ("request", "object", "spec", "containers", "*", "env"),
    ("request", "object", "spec", "containers", "*", "env", "*"),
    ("request", "object", "spec", "containers", "*", "env", "*", "name"),
    ("request", "object", "spec", "containers", "*", "volumeMounts"),
    ("request", "object", "spec", "containers", "*", "volumeMounts", "*", "name"),
    ("request", "object", "spec", "containers", "*", "volumeMounts", "*", "mountPath"),
    ("request", "object", "spec", "initContainers"),
    ("request", "object", "spec", "initContainers", "*", "name"),
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _set(doc: Any, path: tuple[Any, ...], value: Any, draw: Any) -> Any:
    """``doc`` with ``value`` at ``path`` (``*`` picks an index); parents are created as needed."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, list):
        if not doc:
            return doc
        index = draw(st.integers(0, len(doc) - 1)) if head == "*" or not isinstance(head, int) else head
        index = min(index, len(doc) - 1)
        doc[index] = _set(doc[index], rest, value, draw)
        return doc
    if not isinstance(doc, dict):
        doc = {}
    if head == "*":
        return doc
    doc[head] = _set(doc.get(head), rest, value, draw)
    return doc


def _delete(doc: Any, path: tuple[Any, ...]) -> None:
    for key in path[:-1]:
        if isinstance(doc, dict):
            doc = doc.get(key)
        elif isinstance(doc, list) and isinstance(key, int) and key < len(doc):
            doc = doc[key]
        else:
            return
    if isinstance(doc, dict):
        doc.pop(path[-1], None)
    elif isinstance(doc, list) and isinstance(path[-1], int) and path[-1] < len(doc):
        del doc[path[-1]]


@st.composite
def reviews(draw: Any) -> bytes:
    """One fuzzed AdmissionReview body."""
    review = json.loads(json.dumps(draw(st.sampled_from(SAMPLES))))
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            path = draw(st.sampled_from(HOT_PATHS))
        else:
            path = draw(st.sampled_from(list(_paths(review))[1:]))
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add-key"]))
        if action == "delete" and path:
            _delete(review, path)
        elif action == "add-key":
            review = _set(review, (*path, draw(st.text(max_size=10))), draw(hostile), draw)
        else:
            review = _set(review, path, draw(hostile), draw)
    body = encode(review)
    if draw(st.integers(0, 19)) == 0:  # one body in twenty is not UTF-8 any more
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"])) + body[at:]
    return body


def drive(loop: asyncio.AbstractEventLoop, app: Any, body: bytes) -> tuple[int, Any]:
    """POST ``body`` to ``/mutate`` of the ASGI ``app`` on ``loop``; (status, decoded JSON answer)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/mutate",
        "raw_path": b"/mutate",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8443),
    }
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    loop.run_until_complete(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), orjson.loads(payload)
