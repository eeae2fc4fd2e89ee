"""A cluster of 10,000 pods, served by the stand-in API server on 127.0.0.1: the audit follows every
continue token at the page size asked for, judges every pod once, and its memory does not grow with
the cluster (the peak for 10,000 pods is the peak for 2,000; --page-size sets it), far below what
holding the pods takes.

The stand-in runs in a process of its own (``python -m tests.audit.standin``), so that what is
measured is the audit's memory alone; it generates each pod when a page asks for it (standin.py).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tracemalloc
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from kubernetes import client

from tests.support.paths import REPO
from webhook.audit.scan import Auditor, Plan, Result
from webhook.core.settings import Settings

from .standin import LACKING_AT, LACKING_EVERY, realistic

PAGE = 500


@contextmanager
def stand_in(count: int) -> Iterator[str]:
    """The stand-in serving ``count`` generated pods, in a child process; its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.audit.standin", "--generate", str(count)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        assert process.stdin is not None
        process.stdin.close()  # the stand-in's signal to stop
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def served(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/debug/requests", timeout=10) as response:
        log: dict[str, Any] = json.load(response)
    return log


def audit(url: str, api_client: Any, measure: bool = True, page_size: int = PAGE) -> tuple[Result, int]:
    """One audit against ``url``; (result, peak traced bytes, 0 unless ``measure``)."""
    api_client.configuration.host = url
    auditor = Auditor(api_client, Plan(Settings(), page_size=page_size))
    if not measure:
        return auditor.run(), 0
    tracemalloc.start()
    try:
        result = auditor.run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


def decoded_size(count: int) -> int:
    """Bytes that holding ``count`` pods decoded from JSON takes (as the audit decodes a page)."""
    text = orjson.dumps([realistic(i) for i in range(count)])
    tracemalloc.start()
    try:
        pods = orjson.loads(text)
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(pods) == count
    return size


def test_ten_thousand_pods_paginated_in_bounded_memory() -> None:
    with client.ApiClient(client.Configuration()) as api_client:
        with stand_in(20) as url:
            audit(url, api_client, measure=False)  # the client's first requests build its models
        with stand_in(2_000) as url:
            small, small_peak = audit(url, api_client)
            _, small_pages_peak = audit(url, api_client, page_size=100)
        with stand_in(10_000) as url:
            result, peak = audit(url, api_client)
            log = served(url)

    pages = [r for r in log["requests"] if r["path"] == "/api/v1/pods"]
    assert len(pages) == math.ceil(10_000 / PAGE)
    assert {r["query"]["limit"] for r in pages} == {str(PAGE)}
    assert [r["query"].get("continue") for r in pages] == [None, *(str(PAGE * n) for n in range(1, len(pages)))]
    assert (result.stats.listed, result.stats.audited, result.stats.pages) == (10_000, 10_000, 20)
    lacking = [f"web-{i:05d}" for i in range(LACKING_AT, 10_000, LACKING_EVERY)]
    assert sorted(f.pod for f in result.findings) == lacking
    assert len(small.findings) == 2

    # Bounded: five times the pods, not more memory (a little slack for allocator noise) ...
    assert peak < small_peak * 1.2, (peak, small_peak)
    # ... and well below holding the pods decoded. The peak is one page being decoded: orjson's
    # working buffer, several times the page's JSON, is most of it.
    all_pods = decoded_size(PAGE) * (10_000 // PAGE)
    assert peak < all_pods / 4, (peak, all_pods)
    # The page size is the bound: smaller pages, a lower peak.
    assert small_pages_peak < small_peak / 2, (small_pages_peak, small_peak)
