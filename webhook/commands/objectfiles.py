"""The YAML a user would ``kubectl apply``, read for ``provision``: several documents per file, ``-``
for stdin, a folder for every ``*.yaml``/``*.yml``/``*.json`` in it, ``List`` objects opened up."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from webhook.commands import files
from webhook.commands.common import one_line
from webhook.oidc.errors import InputError


@dataclasses.dataclass(frozen=True)
class Document:
    obj: dict[str, Any]
    source: str  # file name and document number, for messages
    base: Path  # relative publicKeyFiles are read from here


def read_documents(paths: list[str]) -> list[Document]:
    """Every YAML document of ``paths`` (files, folders, ``-``), in order; an unreadable one is an InputError."""
    documents: list[Document] = []
    for path, base in expand(paths):
        text = files.read_text(path, "manifest")
        try:
            loaded = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise InputError(f"{path} is not valid YAML: {one_line(exc)}") from exc
        for number, obj in enumerate(loaded, start=1):
            if obj is None:
                continue
            if not isinstance(obj, dict):
                raise InputError(f"{path} (document {number}) is not an object")
            if obj.get("kind") == "List" and isinstance(obj.get("items"), list):
                documents.extend(Document(item, f"{path} (document {number})", base) for item in obj["items"])
            else:
                documents.append(Document(obj, f"{path} (document {number})", base))
    return documents


def expand(paths: list[str]) -> Iterator[tuple[str, Path]]:
    for path in paths:
        if path == "-":
            yield path, Path.cwd()
        elif Path(path).is_dir():
            for child in sorted(Path(path).iterdir()):
                if child.suffix in (".yaml", ".yml", ".json") and child.is_file():
                    yield str(child), child.parent
        else:
            yield path, Path(path).parent


def file_reader(base: Path) -> Callable[[str], str]:
    def read(path: str) -> str:
        full = Path(path) if Path(path).is_absolute() else base / path
        return files.read_text(str(full), "keys.publicKeyFiles entry")

    return read
