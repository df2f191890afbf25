"""No benchmark script or test edits ``sys.path`` to find a module: the benchmarks import their harness
from the package (distillcaps.benchmarking), and the tests' shared helpers are on pytest's
``pythonpath`` (pyproject.toml)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("benchmarks", "tests")


def edits_sys_path(tree: ast.AST) -> list[int]:
    """Lines that change sys.path: a call of one of its methods, or an assignment to it or into it."""
    lines = []
    for node in ast.walk(tree):
        target = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value  # sys.path.insert(...), sys.path.append(...)
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            target = next((t.value if isinstance(t, ast.Subscript) else t for t in targets), None)
        if target is not None and ast.unparse(target) == "sys.path":
            lines.append(node.lineno)
    return sorted(lines)


def test_no_file_edits_sys_path():
    found = {
        f"{path.relative_to(REPO_ROOT)}:{line}"
        for folder in CHECKED
        for path in sorted((REPO_ROOT / folder).rglob("*.py"))
        for line in edits_sys_path(ast.parse(path.read_text(), str(path)))
    }
    assert not found, f"sys.path edited at {sorted(found)}"


def test_the_check_sees_each_kind_of_edit():
    source = "import sys\nsys.path.insert(0, 'x')\nsys.path[:0] = ['x']\nsys.path += ['x']\nsys.path = []\n"
    assert edits_sys_path(ast.parse(source)) == [2, 3, 4, 5]
    assert edits_sys_path(ast.parse("import sys\nprint(sys.path)\nsys.argv.append('x')\n")) == []
