"""AdmissionReview in, AdmissionReview out: decoding, validation and the one place responses are built.

The envelope is checked just enough to answer correctly (405/415/413/400, never a 500 for input);
the pod inside stays a raw dict. Everything here is pure: the HTTP layer feeds it bytes and an identity lookup result.

Errors:
    BadReview  the body is not an AdmissionReview we can answer (HTTP 400, JSON ``{"error": ...}``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from webhook.core.records import AdmissionWarning, PatchOp

V1 = "admission.k8s.io/v1"
V1BETA1 = "admission.k8s.io/v1beta1"
REVIEW_KIND = "AdmissionReview"


class BadReview(ValueError):
    """The request body cannot be answered with an AdmissionReview (HTTP 400)."""


def parse_review(body: bytes) -> dict[str, Any]:
    """Decode and check the envelope; raises :class:`BadReview` naming what is wrong."""
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadReview(f"body is not valid JSON: {exc}") from None
    if not isinstance(review, dict):
        raise BadReview(f"body is a JSON {type(review).__name__}, not an AdmissionReview object")
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadReview("AdmissionReview has no 'request' object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("AdmissionReview request has no 'uid'")
    return review


def is_pod_create(request: Mapping[str, Any]) -> bool:
    """Only CREATE of core/v1 Pod is mutated [ours: upstream treats any object as a pod]."""
    kind = request.get("kind")
    if not isinstance(kind, Mapping):
        return False
    return (
        request.get("operation") == "CREATE"
        and kind.get("group", "") == ""
        and kind.get("version") == "v1"
        and kind.get("kind") == "Pod"
        and not request.get("subResource")
    )


def response(
    review: Mapping[str, Any],
    *,
    allowed: bool = True,
    patch: Sequence[PatchOp] = (),
    warnings: Sequence[AdmissionWarning] = (),
    code: int | None = None,
    message: str | None = None,
) -> bytes:
    """The encoded AdmissionReview answering ``review``.

    Echoes its apiVersion, kind and request uid (a v1 response without them is rejected by
    kube-apiserver, upstream #225). An empty patch is omitted together with ``patchType``, which is
    what makes reinvocation safe: a second pass that has nothing to add says so.
    """
    api_version = review.get("apiVersion")
    if api_version not in (V1, V1BETA1):
        api_version = V1
    body: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": allowed}
    if patch:
        body["patchType"] = "JSONPatch"
        body["patch"] = base64.b64encode(orjson.dumps(list(patch))).decode("ascii")
    if warnings:
        body["warnings"] = [w.message for w in warnings]
    if code is not None or message is not None:
        status: dict[str, Any] = {}
        if code is not None:
            status["code"] = code
        if message is not None:
            status["message"] = message
        body["status"] = status
    return orjson.dumps({"apiVersion": api_version, "kind": REVIEW_KIND, "response": body})


def error_body(message: str) -> bytes:
    """The JSON body of a non-200 answer: ``{"error": "..."}``."""
    return orjson.dumps({"error": message})
