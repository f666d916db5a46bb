"""The package imports only downward: no module imports one that imports it back, directly or
through others, counting imports inside functions too (they would hide a cycle, not remove it)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "digit_keras"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports anywhere in its source."""
    modules = {_module_name(path, package.parent): path for path in package.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        graph[name] = {target for target in imported if target in modules} - {name}
    return graph


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "digit_keras.training.cv" in graph["digit_keras.cli"]  # the graph sees lazy imports
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


def test_the_cycle_check_finds_a_cycle_through_a_function_level_import(tmp_path):
    package = tmp_path / "digit_keras"
    package.mkdir()
    (package / "a.py").write_text("from digit_keras import b\n")
    (package / "b.py").write_text("def f():\n    from digit_keras.a import x\n")
    graph = import_graph(package)
    assert graph == {"digit_keras.a": {"digit_keras.b"}, "digit_keras.b": {"digit_keras.a"}}
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()
