"""The shape docs/design.md asks of the code, read off the code itself: no function of the package
or of bench/ over 60 lines, unless its docstring says why in a paragraph that starts with "Long
because"."""

from __future__ import annotations

import ast
from pathlib import Path

from ml_platform_tests.support.constants import ROOT

MAX_LINES = 60
REASON = "Long because"
ROOTS = ("ml_platform", "bench")  # the package, and `make bench`


def sources(root: Path) -> list[Path]:
    """The .py files under ROOTS, hidden folders left out (bench/.prefect-venv, .mlflow-venv: venvs)."""
    paths = sorted(path for name in ROOTS for path in (root / name).rglob("*.py"))
    return [path for path in paths if not any(part.startswith(".") for part in path.relative_to(root).parts)]


def long_functions(root: Path = ROOT) -> list[str]:
    """'path:line name (N lines)' of every function over MAX_LINES lines without a stated reason."""
    found = []
    for path in sources(root):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_LINES and REASON not in (ast.get_docstring(node) or ""):
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_over_60_lines_without_a_reason():
    assert long_functions() == [], f"split them, or say why in a '{REASON} ...' paragraph of the docstring"


def test_the_check_sees_a_long_function_and_its_reason(tmp_path):
    package = tmp_path / "ml_platform"
    package.mkdir()
    body = "\n".join("    x = 1" for _ in range(MAX_LINES))
    (package / "a.py").write_text(
        f"def long():\n{body}\n\n\ndef reasoned():\n    '''{REASON} it is a table.'''\n{body}\n"
    )
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "b.py").write_text(f"def long():\n{body}\n")
    assert long_functions(tmp_path) == ["bench/b.py:1 long (61 lines)", "ml_platform/a.py:1 long (61 lines)"]
