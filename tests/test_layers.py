"""The layers of ``webhook/``, kept by a test over every import (module level and inside functions).

Each package may import only the packages listed for it (itself always), and only the third-party
distributions listed for it: the pure rules at the bottom never pull in a framework, the shared
Kubernetes and AWS edges never reach up into an application, and only the CLI reaches the commands.
docs/architecture.md draws the same table.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "webhook"

# package -> the webhook packages it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "observe": frozenset({"core"}),
    "options": frozenset({"core"}),
    "oidc": frozenset({"core"}),
    "aws": frozenset({"core"}),
    "kube": frozenset({"core", "observe"}),
    "sources": frozenset({"core", "observe", "options", "kube"}),
    "admission": frozenset({"core", "observe", "sources"}),
    "audit": frozenset({"core", "observe", "options", "kube", "sources"}),
    "pki": frozenset({"core", "observe", "kube"}),
    "server": frozenset({"core", "observe", "options", "admission", "sources"}),
    "provisioner": frozenset({"core", "observe", "oidc", "aws", "kube"}),
    "commands": frozenset(
        {
            "core",
            "observe",
            "options",
            "oidc",
            "aws",
            "kube",
            "sources",
            "admission",
            "audit",
            "pki",
            "server",
            "provisioner",
        }
    ),
    "cli": frozenset({"commands", "options"}),
    "__main__": frozenset({"cli"}),
    "__init__": frozenset(),
}
# Frameworks: only the server may serve HTTP with them.
FRAMEWORKS = frozenset({"fastapi", "starlette", "uvicorn", "uvloop", "httptools"})
# package -> third-party top-level modules it may import (the standard library is always allowed)
THIRD_PARTY: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "observe": frozenset({"orjson", "prometheus_client"}),
    "options": frozenset(),
    "oidc": frozenset({"cryptography"}),
    "aws": frozenset({"boto3", "botocore"}),
    "kube": frozenset({"kubernetes", "urllib3", "orjson"}),
    "sources": frozenset({"kubernetes", "orjson", "yaml"}),
    "admission": frozenset({"orjson"}),
    "audit": frozenset({"kubernetes", "urllib3", "orjson"}),
    "pki": frozenset({"cryptography"}),
    "server": frozenset({"cryptography", "prometheus_client", *FRAMEWORKS}),
    "provisioner": frozenset({"kubernetes", "urllib3", "orjson", "prometheus_client"}),
    "commands": frozenset({"kubernetes", "yaml", "orjson"}),
    "cli": frozenset(),
    "__main__": frozenset(),
    "__init__": frozenset(),
}


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in the file, wherever it is."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "webhook":  # from webhook import x: x is a package or module
                found += [(node.lineno, f"webhook.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; write webhook.<package>...")
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_known_layer() -> None:
    unknown = {str(p.relative_to(PACKAGE)) for p in MODULES if _layer(p) not in ALLOWED}
    assert not unknown, f"add these to the layer table (and docs/architecture.md): {sorted(unknown)}"


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_imports_follow_the_layers(path: Path) -> None:
    layer = _layer(path)
    wrong = []
    for line, module in _imports(path):
        top, _, rest = module.partition(".")
        if top == "webhook":
            target = rest.split(".")[0]
            if target in ("", "__version__"):
                continue
            if target != layer and target not in ALLOWED[layer]:
                wrong.append(f"line {line}: {layer} imports webhook.{target}")
        elif top not in sys.stdlib_module_names and top != "__future__" and top not in THIRD_PARTY[layer]:
            wrong.append(f"line {line}: {layer} imports {top}")
    assert not wrong, f"{path.relative_to(PACKAGE)}: " + "; ".join(wrong)


def test_the_check_catches_a_wrong_arrow(tmp_path: Path) -> None:
    """The parser sees imports inside functions too: a lazy import is still an arrow."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from webhook.server.app import build_app\n    import fastapi\n")
    assert [m for _, m in _imports(module)] == ["webhook.server.app", "fastapi"]


def test_the_architecture_page_states_the_same_arrows() -> None:
    """docs/architecture.md's table is what a newcomer reads: it must say what this test enforces."""
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    stated: dict[str, frozenset[str]] = {}
    for row in page.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[0] != "`cli.py`":
            layer = cells[0].strip("`/")
            imports = cells[2]
            if imports.startswith("every layer but"):
                stated[layer] = ALLOWED["commands"]
            else:
                stated[layer] = frozenset(part.strip("` ") for part in imports.split(",") if part != "nothing")
    expected = {layer: allowed for layer, allowed in ALLOWED.items() if layer not in ("cli", "__main__", "__init__")}
    assert stated == expected
