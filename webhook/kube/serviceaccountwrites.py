"""ServiceAccounts as the provisioner touches them: read whole, annotated and un-annotated by
server-side apply under a field manager of its own, created, and deleted only as the object read.

Why server-side apply: the API server records which manager owns each annotation
(``metadata.managedFields``). Applying exactly the annotations we want makes ours the owner of those
keys and of nothing else: labels, other annotations and other managers' fields are never in our
request, so they cannot be overwritten or lost. Applying an empty intent drops what we owned and
only that; a key another manager also set to the same value stays (it is theirs too).

Three guards, each because the API server would otherwise do something we never want:

- ``force=false``: a key another manager owns with another value is a :class:`FieldConflict`,
  never taken over (another tool or a human annotated that ServiceAccount for another role);
- every apply carries the ``metadata.uid`` that was read: an apply to a missing object would create
  it, and one to a ServiceAccount deleted and recreated since would annotate a stranger; with the uid
  the first is refused (409) and the second invalid (422), so neither happens;
- a delete carries a uid precondition: only the very object that was read (and found ours) goes.

Failures raise :class:`ServiceAccountError` with the same three kinds as the AWS edge
(``retryable``, ``access-denied``, ``terminal``) and one line that says what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.kube import rawapi
from webhook.kube.objects import LOG_VALUE_CHARS

JSON = dict[str, Any]
Kind = Literal["terminal", "retryable", "access-denied"]

APPLY_PATCH = "application/apply-patch+yaml"  # JSON is YAML: the body is sent as JSON


class ServiceAccountError(Exception):
    """A read or write of a ServiceAccount that failed: ``kind`` says what the caller can do about it
    (as :class:`webhook.aws.errors.AwsError`), ``verb`` is the RBAC verb of the request."""

    def __init__(self, kind: Kind, verb: str, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.kind: Kind = kind
        self.verb = verb
        self.message = message
        self.status = status


class FieldConflict(ServiceAccountError):
    """Another field manager owns an annotation we asked for, with another value: nothing was written.
    ``owners`` is (manager, field) per conflict, as the API server named them."""

    def __init__(self, message: str, owners: tuple[tuple[str, str], ...]) -> None:
        super().__init__("retryable", "patch", message, 409)
        self.owners = owners


def read_service_account(api: client.ApiClient, namespace: str, name: str) -> JSON | None:
    """The ServiceAccount as stored (``managedFields`` included), None if there is none."""
    try:
        found: JSON = rawapi.call(api, "GET", _path(namespace, name))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise _failure(exc, "get", namespace, name) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _unreachable(exc, "get", namespace, name) from None
    return found


# A page of a ServiceAccount list: large enough that a namespace is one request, small enough that
# a cluster-wide list never holds a huge answer in memory at once (as kube.LIST_PAGE_SIZE for pods).
LIST_PAGE = 250


def list_service_accounts(api: client.ApiClient, namespace: str | None) -> list[JSON]:
    """Every ServiceAccount of ``namespace`` (None: of the cluster), page by page."""
    path = _path(namespace, None) if namespace is not None else "/api/v1/serviceaccounts"
    found: list[JSON] = []
    token = ""
    while True:
        query = [("limit", str(LIST_PAGE))] + ([("continue", token)] if token else [])
        try:
            page: JSON = rawapi.call(api, "GET", path, query=query)
        except ApiException as exc:
            raise _failure(exc, "list", namespace or "", "") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc, "list", namespace or "", "") from None
        found.extend(item for item in page.get("items") or [] if isinstance(item, dict))
        token = str((page.get("metadata") or {}).get("continue") or "")
        if not token:
            return found


def annotated_by(sa: Mapping[str, Any], key: str, manager: str) -> bool:
    """Whether ``manager`` owns the annotation ``key`` of ``sa`` through server-side apply: the only
    ownership an apply of an empty intent takes back (an Update entry of the same manager name is
    another owner to the API server)."""
    meta = sa.get("metadata")
    entries = meta.get("managedFields") if isinstance(meta, Mapping) else None
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, Mapping) or entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        fields = entry.get("fieldsV1")
        metadata = fields.get("f:metadata") if isinstance(fields, Mapping) else None
        annotations = metadata.get("f:annotations") if isinstance(metadata, Mapping) else None
        if isinstance(annotations, Mapping) and f"f:{key}" in annotations:
            return True
    return False


def apply_annotations(
    api: client.ApiClient,
    namespace: str,
    name: str,
    annotations: Mapping[str, str],
    manager: str,
    *,
    uid: str | None = None,
) -> JSON | None:
    """Make ``annotations`` exactly what ``manager`` owns of the ServiceAccount's annotations (empty:
    retract ours); the object as stored after, or None when there is no such ServiceAccount (nothing
    is ever created). ``uid``: the object's, when the caller has just read it; else it is read here.

    Raises :class:`FieldConflict` when another manager owns one of the keys with another value.
    """
    if uid is None:
        current = read_service_account(api, namespace, name)
        if current is None:
            return None
        uid = _uid(current, namespace, name)
    metadata: JSON = {"name": name, "namespace": namespace, "uid": uid}
    if annotations:
        # Left out when empty: our manager then owns nothing and leaves managedFields altogether.
        metadata["annotations"] = dict(annotations)
    body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}
    try:
        written: JSON = rawapi.call(
            api,
            "PATCH",
            _path(namespace, name),
            body=orjson.dumps(body),
            content_type=APPLY_PATCH,
            query=[("fieldManager", manager), ("force", "false")],
        )
    except ApiException as exc:
        answer = _answer(exc)
        owners = _conflicts(answer)
        if exc.status == 409 and owners:
            raise FieldConflict(_conflict_message(namespace, name, owners), owners) from None
        if exc.status == 404:
            return None  # its namespace is gone
        if exc.status == 409 and read_service_account(api, namespace, name) is None:
            return None  # deleted since it was read: the uid kept the apply from creating it again
        if exc.status == 422 and _about_uid(answer):
            raise ServiceAccountError(
                "retryable",
                "patch",
                f"ServiceAccount {namespace}/{name} was deleted and recreated since it was read: not annotated; "
                "read it again",
                422,
            ) from None
        raise _failure(exc, "patch", namespace, name) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _unreachable(exc, "patch", namespace, name) from None
    return written


def create_service_account(
    api: client.ApiClient,
    namespace: str,
    name: str,
    annotations: Mapping[str, str],
    manager: str,
    *,
    applied: Mapping[str, str] | None = None,
) -> JSON:
    """Create the ServiceAccount with ``annotations`` (fails if one exists: it is then not ours), then
    apply ``applied`` as :func:`apply_annotations` does, so that those keys are owned as on any
    ServiceAccount we annotate and are retracted the same way. The object as stored after."""
    body = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations)},
    }
    try:
        created: JSON = rawapi.call(api, "POST", _path(namespace, None), body=body, query=[("fieldManager", manager)])
    except ApiException as exc:
        if exc.status == 409:
            raise ServiceAccountError(
                "retryable",
                "create",
                f"ServiceAccount {namespace}/{name} exists now (created since it was read): it is not ours; "
                "read it again",
                409,
            ) from None
        raise _failure(exc, "create", namespace, name) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _unreachable(exc, "create", namespace, name) from None
    if not applied:
        return created
    written = apply_annotations(api, namespace, name, applied, manager, uid=_uid(created, namespace, name))
    if written is None:
        raise ServiceAccountError(
            "retryable", "patch", f"ServiceAccount {namespace}/{name} was deleted right after it was created", 404
        )
    return written


def delete_service_account(api: client.ApiClient, namespace: str, name: str, uid: str) -> bool:
    """Delete the ServiceAccount whose uid is ``uid``: True if deleted, False if it was gone already.
    One of the same name but another uid (recreated since it was read) is left alone: an error."""
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
    try:
        rawapi.call(api, "DELETE", _path(namespace, name), body=body)
    except ApiException as exc:
        if exc.status == 404:
            return False
        if exc.status == 409:
            raise ServiceAccountError(
                "retryable",
                "delete",
                f"ServiceAccount {namespace}/{name} was recreated since it was read (another uid): not deleted",
                409,
            ) from None
        raise _failure(exc, "delete", namespace, name) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _unreachable(exc, "delete", namespace, name) from None
    return True


# --- answers ----------------------------------------------------------------------------------------


def _path(namespace: str, name: str | None) -> str:
    collection = f"/api/v1/namespaces/{namespace}/serviceaccounts"
    return f"{collection}/{name}" if name is not None else collection


def _uid(sa: Mapping[str, Any], namespace: str, name: str) -> str:
    meta = sa.get("metadata")
    uid = meta.get("uid") if isinstance(meta, Mapping) else None
    if not isinstance(uid, str) or not uid:
        raise ServiceAccountError("terminal", "get", f"ServiceAccount {namespace}/{name} has no metadata.uid")
    return uid


def _answer(exc: ApiException) -> JSON:
    try:
        body = orjson.loads(exc.body) if exc.body else None
    except orjson.JSONDecodeError:
        body = None
    return body if isinstance(body, dict) else {}


def _kind_of(answer: JSON) -> str | None:
    details = answer.get("details")
    kind = details.get("kind") if isinstance(details, dict) else None
    return kind if isinstance(kind, str) else None


def _causes(answer: JSON) -> list[JSON]:
    details = answer.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    return [c for c in causes if isinstance(c, dict)] if isinstance(causes, list) else []


def _conflicts(answer: JSON) -> tuple[tuple[str, str], ...]:
    """(manager, field) of each FieldManagerConflict cause; the manager is quoted in its message
    (``conflict with "kubectl-edit" using v1``)."""
    found = []
    for cause in _causes(answer):
        if cause.get("reason") != "FieldManagerConflict":
            continue
        message = str(cause.get("message") or "")
        manager = message.split('"')[1] if message.count('"') >= 2 else message
        found.append((manager, str(cause.get("field") or "")))
    return tuple(found)


def _conflict_message(namespace: str, name: str, owners: tuple[tuple[str, str], ...]) -> str:
    said = ", ".join(f"{field} (owned by {manager})" for manager, field in owners)
    return (
        f"ServiceAccount {namespace}/{name}: {said} already set by another manager to another value: "
        "not overwritten; remove it there, or bind another ServiceAccount"
    )


def _about_uid(answer: JSON) -> bool:
    return any(cause.get("field") == "metadata.uid" for cause in _causes(answer))


def _failure(exc: ApiException, verb: str, namespace: str, name: str) -> ServiceAccountError:
    what = f"{verb} ServiceAccount {namespace}/{name}"
    said = rawapi.status_message(exc)[:LOG_VALUE_CHARS]
    status = exc.status or 0
    answer = _answer(exc)
    if status == 401:
        return ServiceAccountError(
            "access-denied", verb, f"{what}: the provisioner's credentials are not accepted by the API server", status
        )
    if status == 403 and answer.get("reason") == "Forbidden" and " cannot " in rawapi.status_message(exc):
        # RBAC's own answer ("... cannot patch resource ..."); other 403s (a namespace being
        # terminated, an admission webhook) say their reason in the message below.
        return ServiceAccountError(
            "access-denied",
            verb,
            f"{what}: forbidden: grant the provisioner's ServiceAccount {verb} on serviceaccounts in namespace "
            f"{namespace}",
            status,
        )
    if status == 404 and _kind_of(answer) == "namespaces":
        return ServiceAccountError(
            "terminal", verb, f"{what}: namespace {namespace} does not exist: create it, or bind another", status
        )
    if status in (409, 429) or status >= 500:
        return ServiceAccountError("retryable", verb, f"{what}: HTTP {status}: {said}: will retry", status)
    return ServiceAccountError("terminal", verb, f"{what}: HTTP {status}: {said}", status)


def _unreachable(exc: BaseException, verb: str, namespace: str, name: str) -> ServiceAccountError:
    return ServiceAccountError(
        "retryable",
        verb,
        f"{verb} ServiceAccount {namespace}/{name}: the API server did not answer "
        f"({type(exc).__name__}: {str(exc)[:LOG_VALUE_CHARS]}): will retry",
    )
