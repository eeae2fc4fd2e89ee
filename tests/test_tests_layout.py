"""The tests' own layout, kept by a test over their imports (module level and inside functions).

A test module or conftest imports what it shares from ``tests.support`` (or from a helper module of
its own folder, e.g. ``tests/deploy/render.py``), never another test module or a conftest: fixtures
reach a test through pytest, not through an import. ``tests.support`` in turn imports nothing from a
test folder, so that every folder can use it.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against its package."""
    package = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            # `from . import test_x` names the module in the alias
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def is_test_or_conftest(module: str) -> bool:
    leaf = module.rsplit(".", 1)[-1]
    return module.startswith("tests.") and (leaf.startswith("test_") or leaf == "conftest")


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    offenders = {
        str(path.relative_to(TESTS.parent)): sorted(m for m in imported(path) if is_test_or_conftest(m))
        for path in sorted(TESTS.rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}, "move what they share to tests/support"


def test_support_imports_no_test_folder() -> None:
    offenders = {
        str(path.relative_to(TESTS.parent)): sorted(
            m for m in imported(path) if m.startswith("tests.") and not m.startswith("tests.support")
        )
        for path in sorted((TESTS / "support").rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}
