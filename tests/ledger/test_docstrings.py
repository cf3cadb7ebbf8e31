"""Every public function, method and class of ``ledger/`` says what it takes and gives (issue 9)."""

from __future__ import annotations

import ast
from pathlib import Path

LEDGER = Path(__file__).resolve().parents[2] / "ledger"


def _undocumented() -> list[str]:
    missing: list[str] = []
    for path in sorted(LEDGER.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))

        def walk(node: ast.AST, prefix: str, file: Path = path) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    if child.name.startswith("_"):
                        continue
                    if ast.get_docstring(child) is None:
                        missing.append(f"{file.relative_to(LEDGER.parent)}:{child.lineno} {prefix}{child.name}")
                    if isinstance(child, ast.ClassDef):
                        walk(child, f"{child.name}.")

        walk(tree, "")
    return missing


def test_every_public_callable_in_ledger_has_a_docstring() -> None:
    assert _undocumented() == []
