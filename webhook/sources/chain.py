"""The identity chain: Pod Identity file > ServiceAccount > ConfigMap (the order is stated in
:mod:`webhook.sources`).

:func:`compose` is the chain itself, a plain function of what each source says: the offline
``mutate`` command and the audit call it directly with what they read. :class:`IdentityChain` is
what ``serve`` adds around it: the ServiceAccount cache with its slow path, in two calls so the
common case stays off any await (:meth:`IdentityChain.cached` answers from memory or says ``MISS``,
and only then does the caller await :meth:`IdentityChain.resolve_slow`), and the readiness checks of
every source for ``/readyz``.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from webhook.core.records import CONTAINER_CREDENTIALS, Identity
from webhook.sources import Source
from webhook.sources.resolver import Resolver


def compose(
    namespace: str,
    service_account: str,
    account: Identity | None,
    *,
    pod_identity: Source | None = None,
    config_map: Source | None = None,
) -> Identity | None:
    """The chain's answer given what the ServiceAccount says (``account``; None: not found)."""
    if pod_identity is not None:
        listed = pod_identity.lookup(namespace, service_account)
        if listed is not None:
            if account is None:
                return listed  # no ServiceAccount annotations to read: the flags' defaults
            # The account's own regional STS, lifetime (and their warnings) still apply.
            return dataclasses.replace(account, mode=CONTAINER_CREDENTIALS, source=listed.source)
    if account is not None and account.role_arn:
        return account
    if config_map is not None:
        mapped = config_map.lookup(namespace, service_account)
        if mapped is not None:
            return mapped
    return account


class Miss:
    def __repr__(self) -> str:
        return "MISS"


MISS: Final = Miss()
"""``cached`` could not decide without the ServiceAccount cache's slow path."""


class IdentityChain:
    """:func:`compose` over the ServiceAccount cache (with its slow path) and the optional sources."""

    def __init__(
        self,
        service_accounts: Resolver,
        *,
        pod_identity: Source | None = None,
        config_map: Source | None = None,
    ) -> None:
        self.service_accounts = service_accounts
        self.pod_identity = pod_identity
        self.config_map = config_map

    def checks(self) -> dict[str, bool]:
        """Readiness of every source, by the name ``/readyz`` reports it under."""
        checks = {"serviceAccountCacheSynced": self.service_accounts.store.ready}
        if self.config_map is not None:  # --watch-config-map: its first list has completed
            checks["configMapSynced"] = self.config_map.ready
        if self.pod_identity is not None:  # --watch-container-credentials-config: its file was read once
            checks["containerCredentialsConfigLoaded"] = self.pod_identity.ready
        return checks

    def cached(self, namespace: str, service_account: str) -> Identity | Miss | None:
        """The answer from memory alone, or ``MISS`` when the ServiceAccount is not cached yet."""
        account = self.service_accounts.cached(namespace, service_account)
        if account is None:
            return MISS
        return self.compose(namespace, service_account, account)

    async def resolve_slow(self, namespace: str, service_account: str) -> Identity | None:
        """After a miss: the ServiceAccount cache's slow path, then the same composition."""
        account = await self.service_accounts.resolve_slow(namespace, service_account)
        return self.compose(namespace, service_account, account)

    def compose(self, namespace: str, service_account: str, account: Identity | None) -> Identity | None:
        return compose(namespace, service_account, account, pod_identity=self.pod_identity, config_map=self.config_map)
