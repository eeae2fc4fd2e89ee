"""One raw-JSON request to the API server through an ApiClient: the path, the body and the answer as
plain JSON, with the client's authentication, TLS, token refresh and proxy settings.

The generated API methods validate bodies into the client's model classes, which drop fields they do
not know and rewrite timestamps (a Lease's ``renewTime`` would lose its microseconds); custom
resources, Leases, Events and TokenRequests are written exactly as built here instead.
"""

from __future__ import annotations

from typing import Any

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

JSON = dict[str, Any]

# One request for a small object: far above what a healthy API server needs, short enough that a hung
# connection delays the next try by seconds.
REQUEST_TIMEOUT = 10.0

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


def call(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str | None = None,
    accept: str = "application/json",
    timeout: float | tuple[float, float] = REQUEST_TIMEOUT,
) -> Any:
    """``method path`` with ``body`` (JSON-encoded), the answer decoded (None for an empty body).

    A non-2xx answer raises :class:`ApiException` carrying its status, as the generated methods do;
    a connection failure raises what urllib3 raises.
    """
    headers: dict[str, str] = {"Accept": accept}
    if body is not None:
        headers["Content-Type"] = content_type or "application/json"
    method_, url, header_params, serialized, post_params = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=query or [],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response: Any = api.call_api(method_, url, header_params, serialized, post_params, _request_timeout=timeout)
    try:
        data = response.read()
    finally:
        response.response.release_conn()  # read in full: the connection goes back to the pool
    if not 200 <= response.status <= 299:
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    return orjson.loads(data) if data else None


def status_message(exc: ApiException) -> str:
    """The API server's own message of a failure Status (``exc.body``), else the HTTP reason."""
    try:
        body = orjson.loads(exc.body) if exc.body else None
    except orjson.JSONDecodeError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return " ".join(str(message or exc.reason or "").split())
