"""ServiceAccounts from manifests on disk (``--service-accounts``, ``mutate --service-account``): no cluster."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from webhook.core.annotations import parse_service_account
from webhook.core.records import Identity
from webhook.core.settings import Settings


def _documents(path: Path) -> Iterator[Any]:
    files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json")) if path.is_dir() else [path]
    for file in files:
        with file.open(encoding="utf-8") as fh:
            yield from yaml.safe_load_all(fh)


def _service_accounts(doc: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(doc, Mapping):
        return
    if doc.get("kind") == "ServiceAccount":
        yield doc
    elif str(doc.get("kind", "")).endswith("List"):  # List, ServiceAccountList
        for item in doc.get("items") or ():
            yield from _service_accounts(item)


def load_manifests(
    paths: Iterable[str | Path], settings: Settings, default_namespace: str = "default"
) -> list[Identity]:
    """Identities of every ServiceAccount in the given files/folders (YAML or JSON, multi-document).

    Raises OSError or yaml.YAMLError on unreadable input; callers turn that into a one-line error.
    """
    identities: list[Identity] = []
    for path in paths:
        for doc in _documents(Path(path)):
            for sa in _service_accounts(doc):
                meta = dict(sa.get("metadata") or {})
                meta.setdefault("namespace", default_namespace)
                identities.append(parse_service_account({**sa, "metadata": meta}, settings))
    return identities
