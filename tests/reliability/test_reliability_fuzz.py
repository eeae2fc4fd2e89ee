"""Fuzzed AdmissionReviews through the real ASGI endpoint: never a 500, every patch applies to its
pod, and a second pass over the patched pod adds nothing.

CI runs a bounded, derandomized number of examples (``FUZZ_EXAMPLES``, default 400); ``make fuzz``
runs 100,000 random ones and prints the count and what they produced.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import jsonpatch
import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from tests.support.asgi import app_of, example_store
from webhook.core.marker import MARKER_ANNOTATION
from webhook.core.settings import Settings
from webhook.sources.resolver import Resolver

from .fuzz import drive, reviews

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))
LONG_RUN = "FUZZ_EXAMPLES" in os.environ
TALLY: Counter[str] = Counter()


def _app() -> Any:
    return app_of(Resolver(example_store()), Settings(aws_default_region="us-west-2"))


APP = _app()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()
    if LONG_RUN:
        figures = ", ".join(f"{k}={v}" for k, v in sorted(TALLY.items()))
        print(f"\nfuzz: {TALLY['examples']} AdmissionReviews; {figures}")


@pytest.fixture(scope="module", autouse=True)
def quiet_admission_log() -> Iterator[None]:
    # A JSON line per request on stderr would flood the output; the line is still built and
    # written (it must not raise), only to /dev/null.
    with open(os.devnull, "w") as devnull, pytest.MonkeyPatch.context() as patcher:
        patcher.setattr("sys.stderr", devnull)
        yield


@contextlib.contextmanager
def deep_recursion() -> Iterator[None]:
    """The test's own copies and encodings walk values ~1,000 levels deep (the server never does)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _same_metadata(patched: Any, sent: Any) -> None:
    """The metadata as sent, but for the admission marker: the one annotation a patch adds there."""
    if sent is None:  # null: the marker's add creates the map
        sent = {}
    annotations_sent = sent.get("annotations") if isinstance(sent, dict) else None
    if not isinstance(sent, dict) or not isinstance(annotations_sent, dict | None):
        assert patched == sent  # nothing can be added to it
        return
    patched = dict(patched)
    annotations = dict(patched.pop("annotations"))
    assert MARKER_ANNOTATION in annotations, "a mutated pod carries no admission marker"
    del annotations[MARKER_ANNOTATION]
    sent = dict(sent)
    assert annotations == (sent.pop("annotations", None) or {})
    assert patched == sent


def _check(loop: asyncio.AbstractEventLoop, body: bytes) -> None:
    status, answer = drive(loop, APP, body)
    TALLY["examples"] += 1
    TALLY[f"status_{status}"] += 1
    assert status in (200, 400), (status, answer)
    if status != 200:
        assert isinstance(answer.get("error"), str)
        return
    response = answer["response"]
    assert isinstance(response["uid"], str)
    assert isinstance(response["allowed"], bool)
    for warning in response.get("warnings", ()):
        assert len(warning) < 120
    if "patch" not in response:
        TALLY["allowed_unpatched" if response["allowed"] else "denied"] += 1
        return
    TALLY["mutated"] += 1
    assert response["patchType"] == "JSONPatch"
    patch = orjson.loads(base64.b64decode(response["patch"]))
    assert patch
    assert all(op["op"] == "add" for op in patch)
    review = orjson.loads(body)
    pod = review["request"]["object"]
    with deep_recursion():
        patched = jsonpatch.apply_patch(copy.deepcopy(pod), patch)
        # Nothing the caller sent was lost: every original key is still there, unchanged or appended to.
        for key, value in pod.items():
            if key == "metadata":
                _same_metadata(patched[key], value)
            elif key != "spec":
                assert patched[key] == value
        review["request"]["object"] = patched
        second = json.dumps(review).encode()
    again_status, again = drive(loop, APP, second)
    assert again_status == 200
    assert "patch" not in again["response"], "a second pass over the patched pod added operations"


@settings(
    max_examples=EXAMPLES,
    derandomize=not LONG_RUN,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(body=reviews())
def test_fuzzed_reviews_never_500_and_patches_apply(loop: asyncio.AbstractEventLoop, body: bytes) -> None:
    _check(loop, body)
