"""Reading a whole collection page by page, and single objects, with errors as one line each.

A list is asked for in pages (``limit`` and ``continue``), and each page is handed to the caller and
dropped before the next is fetched, so memory is one page whatever the size of the cluster.

When a continue token outlives etcd's compaction window (5 minutes by default) the API server answers
410. Its Status usually carries a token for the rest of the list at the current state: that token is
taken, because a caller that judges each object on its own misses at most objects created meanwhile,
while starting over could never end on a collection too large to list within the window. Only a 410
without such a token starts the listing over, at most ``max_restarts`` times in a row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

log = logging.getLogger("irsa_webhook.kube")

# (connect, read) seconds of one request: a page (webhook.kube.LIST_PAGE_SIZE) is a few MB at most.
REQUEST_TIMEOUT = (10.0, 60.0)
# A listing restarted this many times in a row because its continue token expired is an error.
MAX_LIST_RESTARTS = 3
MESSAGE_CHARS = 300  # bound of an API server's message in a line of output


class RequestError(Exception):
    """A list or a GET could not be done; the message says what failed, in one line."""


class _Expired(Exception):
    """The continue token expired and the API server offered no way on: the listing starts over."""


def describe(exc: BaseException) -> str:
    """One line for a failed request: the status and the API server's own message."""
    if isinstance(exc, ApiException):
        message = ""
        try:
            body = orjson.loads(exc.body) if exc.body else None
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]
        text = f"HTTP {exc.status} {exc.reason or ''}".rstrip()
        return f"{text}: {one_line(message)}" if message else text
    return one_line(f"{type(exc).__name__}: {exc}")


def one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 3] + "..."


def _continue_token(body: Any) -> str:
    """The ``metadata.continue`` of a 410 Status: the API server's token for the rest of the list."""
    try:
        status = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return ""
    meta = status.get("metadata") if isinstance(status, dict) else None
    token = meta.get("continue") if isinstance(meta, dict) else None
    return token if isinstance(token, str) else ""


def _json(raw: Any) -> Any:
    """The decoded body of a raw response, its connection handed back to the pool."""
    try:
        return orjson.loads(raw.data)
    finally:
        raw.release_conn()


class Paginator:
    """Lists with one page size; counts the listings restarted and continued inconsistently."""

    def __init__(self, page_size: int, *, max_restarts: int = MAX_LIST_RESTARTS) -> None:
        self.page_size = page_size
        self.max_restarts = max_restarts
        self.restarts = 0  # listings started over after an expired continue token
        self.inconsistent = 0  # listings continued with the API server's inconsistent continue token

    def list_all(
        self,
        what: str,
        call: Callable[..., Any],
        page: Callable[[list[Any]], None],
        restart: Callable[[], None],
        **kwargs: Any,
    ) -> None:
        """Hand every page of a list to ``page``; after ``restart`` it is listed again from the start.

        ``call`` is a client ``list_*`` method (bound, with any fixed arguments); ``what`` names the
        collection in errors. RequestError when it cannot be listed.
        """
        for attempt in range(self.max_restarts + 1):
            if attempt:
                restart()
                self.restarts += 1
            try:
                for items in self.pages(what, call, **kwargs):
                    page(items)
                    # Let the page go before the next is fetched: two decoded pages would double the peak.
                    del items
                return
            except _Expired:
                log.warning("listing %s: the continue token expired; listing again from the start", what)
        raise RequestError(f"cannot list {what}: its continue token expired {self.max_restarts + 1} times in a row")

    def pages(self, what: str, call: Callable[..., Any], **kwargs: Any) -> Iterator[list[Any]]:
        token = ""
        while True:
            try:
                # No name for the response: it keeps its bytes once read, and they must not outlive
                # the decoding (a name would hold them while the caller judges the page).
                body = _json(
                    call(
                        limit=self.page_size,
                        _continue=token or None,
                        _preload_content=False,
                        _request_timeout=REQUEST_TIMEOUT,
                        **kwargs,
                    )
                )
            except ApiException as exc:
                if exc.status == 410 and token:
                    fresh = _continue_token(exc.body)
                    if fresh:
                        log.warning("listing %s: the continue token expired; continuing from the current state", what)
                        self.inconsistent += 1
                        token = fresh
                        continue
                    raise _Expired from None
                raise RequestError(f"cannot list {what}: {describe(exc)}") from None
            except (HTTPError, OSError, orjson.JSONDecodeError) as exc:
                raise RequestError(f"cannot list {what}: {describe(exc)}") from None
            if not isinstance(body, dict):
                raise RequestError(f"cannot list {what}: the answer is not a list")
            items = body.get("items")
            meta = body.get("metadata")
            next_token = meta.get("continue") if isinstance(meta, dict) else None
            del body
            yield items if isinstance(items, list) else []
            del items
            if not isinstance(next_token, str) or not next_token:
                return
            token = next_token


def get(what: str, call: Callable[..., Any]) -> dict[str, Any] | None:
    """One object read with a GET (``call``: a bound ``read_*`` method); None when it does not exist.

    RequestError on any other failure.
    """
    try:
        body = _json(call(_preload_content=False, _request_timeout=REQUEST_TIMEOUT))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise RequestError(f"cannot read {what}: {describe(exc)}") from None
    except (HTTPError, OSError, orjson.JSONDecodeError) as exc:
        raise RequestError(f"cannot read {what}: {describe(exc)}") from None
    if not isinstance(body, dict):
        raise RequestError(f"cannot read {what}: the answer is not an object")
    return body
