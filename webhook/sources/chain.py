"""The identity chain the admission path asks: Pod Identity file > ServiceAccount > ConfigMap.

Two calls, so the common case stays off any await: :meth:`IdentityChain.cached` answers from memory
or says "miss" (``MISS``), and only then does the caller await :meth:`IdentityChain.resolve_slow`
(the ServiceAccount cache's live GET and grace period). Both compose the sources the same way
(:meth:`IdentityChain.compose`).
"""

from __future__ import annotations

import dataclasses
from typing import Final

from webhook.cache import Resolver
from webhook.sources import Source
from webhook.types import CONTAINER_CREDENTIALS, Identity


class Miss:
    def __repr__(self) -> str:
        return "MISS"


MISS: Final = Miss()
"""``cached`` could not decide without the ServiceAccount cache's slow path."""


class IdentityChain:
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

    @property
    def sources(self) -> tuple[Source, ...]:
        return tuple(s for s in (self.pod_identity, self.config_map) if s is not None)

    @property
    def ready(self) -> bool:
        """Every optional source has loaded once (the ServiceAccount cache reports on its own)."""
        return all(source.ready for source in self.sources)

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
        """The chain's answer given what the ServiceAccount cache knows (``account``, None: not found)."""
        if self.pod_identity is not None:
            listed = self.pod_identity.lookup(namespace, service_account)
            if listed is not None:
                if account is None:
                    return listed  # no ServiceAccount annotations to read: the flags' defaults
                # The account's own regional STS, lifetime (and their warnings) still apply.
                return dataclasses.replace(account, mode=CONTAINER_CREDENTIALS, source=listed.source)
        if account is not None and account.role_arn:
            return account
        if self.config_map is not None:
            mapped = self.config_map.lookup(namespace, service_account)
            if mapped is not None:
                return mapped
        return account
