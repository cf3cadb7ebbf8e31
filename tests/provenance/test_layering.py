"""Architecture guard: the pure domain package must not depend on ledger/ or api/."""

from __future__ import annotations

import ast
from pathlib import Path

FORBIDDEN = {"ledger", "api"}
PACKAGE = Path(__file__).resolve().parents[2] / "provenance"


def _imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_provenance_imports_neither_ledger_nor_api() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert files, f"no modules found under {PACKAGE}"
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(
            _imported_roots(ast.parse(path.read_text())) & FORBIDDEN
        )
        for path in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}
