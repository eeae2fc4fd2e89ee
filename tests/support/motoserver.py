"""moto's standalone server with the IAM actions it lacks: ``python -m tests.support.motoserver -H HOST -p PORT``.

moto 5.2.6 answers ``AddClientIDToOpenIDConnectProvider`` and ``RemoveClientIDFromOpenIDConnectProvider``
with a 500 (NotImplementedError), and the provisioner converges an IAM OIDC provider's client IDs with
exactly those two calls. They are added here as IAM documents them: both idempotent (adding a client
ID that is there, or removing one that is not, succeeds and changes nothing), NoSuchEntity for an
unknown provider, at most 100 client IDs (LimitExceeded).

Its ``ListRolePolicies`` answers every name in one page whatever ``MaxItems`` says, so a caller that
never follows ``Marker`` would pass; it is replaced by one that pages as IAM does (``MaxItems``,
default 100, and an opaque ``Marker``). Everything else is moto's own code.
"""

from __future__ import annotations

from moto.core.responses import ActionResult, EmptyResult
from moto.iam.exceptions import LimitExceededException
from moto.iam.responses import IamResponse
from moto.server import main

# IAM's quota of client IDs per OIDC provider.
MAX_CLIENT_IDS = 100
# IAM's default page size of its List calls.
DEFAULT_MAX_ITEMS = 100


def _add_client_id(self: IamResponse) -> ActionResult:
    provider = self.backend.get_open_id_connect_provider(self._get_param("OpenIDConnectProviderArn"))
    client_id = self._get_param("ClientID")
    if client_id not in provider.client_id_list:
        if len(provider.client_id_list) >= MAX_CLIENT_IDS:
            raise LimitExceededException(f"Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: {MAX_CLIENT_IDS}")
        provider.client_id_list.append(client_id)
    return EmptyResult()


def _remove_client_id(self: IamResponse) -> ActionResult:
    provider = self.backend.get_open_id_connect_provider(self._get_param("OpenIDConnectProviderArn"))
    client_id = self._get_param("ClientID")
    if client_id in provider.client_id_list:
        provider.client_id_list.remove(client_id)
    return EmptyResult()


def _list_role_policies(self: IamResponse) -> ActionResult:
    names = self.backend.list_role_policies(self._get_param("RoleName"))
    start = int(self._get_param("Marker") or 0)
    end = start + int(self._get_param("MaxItems") or DEFAULT_MAX_ITEMS)
    result: dict[str, object] = {"PolicyNames": names[start:end], "IsTruncated": end < len(names)}
    if end < len(names):
        result["Marker"] = str(end)
    return ActionResult(result)


def install() -> None:
    """Teach moto's IAM the two actions and paging of ListRolePolicies (moto dispatches an action to the
    response method of its name)."""
    for name, method in (
        ("add_client_id_to_open_id_connect_provider", _add_client_id),
        ("remove_client_id_from_open_id_connect_provider", _remove_client_id),
    ):
        if not hasattr(IamResponse, name):  # a moto that has them keeps its own
            setattr(IamResponse, name, method)
    # Replaces moto's own, which does not page (tests/provisioner/test_provisioner_roleobserve.py fails without it).
    IamResponse.list_role_policies = _list_role_policies  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    main()
