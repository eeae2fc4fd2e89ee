"""A list costs one page of memory, and a page of the largest objects a tenant can write is small.

Anyone with ``edit`` in one namespace can create ServiceAccounts (or pods) with 256 KiB of
annotations each. The ServiceAccount cache and the audit list every namespace, so the size of a page
and what outlives it decide whether one tenant can push every replica past its memory limit
(tests/reliability/test_reliability_memory.py measures the real processes).
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import orjson

from webhook.audit import DEFAULT_PAGE_SIZE
from webhook.kube import LIST_PAGE_SIZE
from webhook.kube.paginate import Paginator
from webhook.kube.reflector import ListWatch

KIB = 1024
MIB = 1024 * KIB
MAX_ANNOTATIONS = 256 * KIB  # what kube-apiserver allows per object
# A page is held about three times over while it is read (measured 2.9x against kube-apiserver).
DECODE_OVERHEAD = 3
PAGES = 4


def test_a_page_of_maximum_size_objects_is_far_under_the_memory_limit() -> None:
    # The shipped limit is 256Mi and a replica peaks at ~165 MiB listing an empty cluster: a page of
    # the largest objects must cost a small part of the ~90 MiB left.
    assert LIST_PAGE_SIZE * MAX_ANNOTATIONS * DECODE_OVERHEAD <= 16 * MIB
    assert DEFAULT_PAGE_SIZE == LIST_PAGE_SIZE  # the audit lists the same tenants' objects


class _Raw:
    """A response as ``_preload_content=False`` gives it: the bytes in ``data``; weakly referenceable."""

    def __init__(self, body: Any) -> None:
        self.data = orjson.dumps(body)

    def release_conn(self) -> None:
        pass


def _huge_object(page: int, index: int) -> dict[str, Any]:
    # The bulk is in an annotation nobody parses: what is measured is the page, not what is kept.
    return {
        "metadata": {
            "namespace": "tenant",
            "name": f"sa-{page}-{index}",
            "annotations": {"example.com/bulk": chr(ord("a") + page) * (MAX_ANNOTATIONS - 1024)},
        }
    }


class _Pages:
    """A list call answering PAGES pages of LIST_PAGE_SIZE maximum-size objects. It remembers each
    response weakly, and whether an earlier response, or an earlier page decoded, was still alive when
    the next page was asked for."""

    def __init__(self) -> None:
        self.responses: list[weakref.ref[_Raw]] = []
        self.limits: list[int] = []
        self.alive_at_next_request: list[bool] = []
        self.decoded_at_next_request: list[bool] = []

    def __call__(self, **kwargs: Any) -> _Raw:
        if kwargs.get("watch"):
            raise ConnectionError("no watch here")
        self.limits.append(kwargs["limit"])
        self.alive_at_next_request.append(any(ref() is not None for ref in self.responses))
        self.decoded_at_next_request.append(any(_is_decoded_page(o) for o in gc.get_objects()))
        page = len(self.responses)
        body = {
            "items": [_huge_object(page, i) for i in range(LIST_PAGE_SIZE)],
            "metadata": {"resourceVersion": "9", "continue": f"page-{page + 1}" if page + 1 < PAGES else ""},
        }
        raw = _Raw(body)
        del body
        self.responses.append(weakref.ref(raw))
        return raw


def _is_decoded_page(obj: object) -> bool:
    """Whether ``obj`` is one of the pages above, decoded (a dict holding a list is tracked by gc)."""
    if not isinstance(obj, dict):
        return False
    meta = obj.get("metadata")
    return isinstance(obj.get("items"), list) and isinstance(meta, dict) and meta.get("resourceVersion") == "9"


def test_the_audits_pages_are_dropped_before_the_next_is_read() -> None:
    pages = _Pages()
    alive_during_page: list[bool] = []

    def judge(items: list[Any]) -> None:
        assert len(items) == LIST_PAGE_SIZE
        # The response's bytes must not be held while the caller works on the decoded page.
        alive_during_page.append(pages.responses[-1]() is not None)

    Paginator(LIST_PAGE_SIZE).list_all("serviceaccounts", pages, judge, lambda: None)
    assert pages.limits == [LIST_PAGE_SIZE] * PAGES
    assert alive_during_page == [False] * PAGES
    assert pages.alive_at_next_request == [False] * PAGES


class _Names(ListWatch[str]):
    """A reflector that keeps only each object's name, as the ServiceAccount cache keeps an identity."""

    def __init__(self, call: Any) -> None:
        counter = _Counter()
        reasons = ("closed", "read_timeout", "gone", "error")
        errors = {"list": counter, "watch": counter}
        super().__init__(call, restarts=dict.fromkeys(reasons, counter), parse_errors=errors)
        self.items: list[str] = []

    def _read(self, obj: dict[str, Any]) -> str:
        name: str = obj["metadata"]["name"]
        return name

    def _replace(self, items: list[str], resource_version: str) -> None:
        self.items = items

    def _apply(self, kind: str, obj: Any, resource_version: str) -> None:
        raise AssertionError("no watch here")


class _Counter:
    def inc(self, amount: float = 1) -> None:
        pass


def test_the_reflector_holds_one_page_at_a_time() -> None:
    pages = _Pages()
    names = _Names(pages)
    names._list()  # the first list, on this thread
    assert len(names.items) == PAGES * LIST_PAGE_SIZE
    assert pages.limits == [LIST_PAGE_SIZE] * PAGES
    # Neither the response nor the decoded objects of a page are alive when the next is asked for:
    # only what _read keeps of each object outlives its page.
    assert pages.alive_at_next_request == [False] * PAGES
    assert pages.decoded_at_next_request == [False] * PAGES
