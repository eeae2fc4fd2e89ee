"""Where a pod's AWS identity comes from: a small chain of sources, asked in a fixed order.

For a pod in namespace N with ServiceAccount S, the first source that answers wins, with no field
merge:

1. the **EKS Pod Identity** file (``--watch-container-credentials-config``), when it lists N/S: the
   pod gets container credentials; the ServiceAccount's own annotations still say its regional STS
   and token lifetime (as upstream);
2. the **ServiceAccount's annotations**, when ``role-arn`` is set (the list+watch cache, with a live
   GET on a miss);
3. the **ConfigMap** mapping (``--watch-config-map``): key ``N/S``, then namespace globs, then ``*/S``.

Otherwise the pod is not mutated: a ServiceAccount without a role is "nothing to do", one that does
not exist (and that no other source knows) is "not found".

Each optional source is a :class:`Source`: an in-memory lookup kept current by its own loader, which
never raises and keeps its last good state when its input breaks. The chain (``webhook.sources.chain``)
is what the admission path asks.
"""

from __future__ import annotations

from typing import Protocol

from webhook.core.records import Identity


class Source(Protocol):
    """One optional identity source: a fast in-memory lookup (called on the event loop)."""

    name: str

    @property
    def ready(self) -> bool:
        """True once the source has loaded its input once (or knows it has none)."""
        ...

    def lookup(self, namespace: str, service_account: str) -> Identity | None:
        """The identity this source gives the pair, or None when it has nothing to say about it."""
        ...
