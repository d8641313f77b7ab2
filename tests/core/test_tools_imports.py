"""The scripts in tools/ import the plugin's modules inside functions (so that `--help` stays
quick), where a moved module shows only when that benchmark runs: `make bench` once stopped
on a test helper that had moved into tests/analysis/. Every ``from thaw_slump_mapper.X import
names`` in tools/ must name a module of this checkout that defines those names (read with
``ast``; nothing is imported)."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Set, Tuple

import pytest

from ..conftest import REPO

PACKAGE = "thaw_slump_mapper"


def _plugin_imports(tool: Path) -> Iterator[Tuple[int, str, Tuple[str, ...]]]:
    for node in ast.walk(ast.parse(tool.read_text(), filename=str(tool))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == PACKAGE:
            yield node.lineno, node.module, tuple(alias.name for alias in node.names)


def _module_file(dotted: str) -> Path:
    parts = dotted.split(".")[1:]
    as_file = REPO.joinpath(*parts).with_suffix(".py") if parts else REPO / "__init__.py"
    return as_file if as_file.is_file() else REPO.joinpath(*parts, "__init__.py")


def _defined_names(module: Path) -> Set[str]:
    names: Set[str] = set()
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


TOOLS = sorted((REPO / "tools").glob("*.py"))


@pytest.mark.parametrize("tool", TOOLS, ids=[t.name for t in TOOLS])
def test_every_plugin_import_in_the_tools_resolves(tool: Path) -> None:
    broken = []
    for line, module, names in _plugin_imports(tool):
        target = _module_file(module)
        if not target.is_file():
            broken.append(f"{tool.name}:{line}: no module {module}")
            continue
        if target.name == "__init__.py" and any(REPO.joinpath(*module.split(".")[1:], f"{n}.py").is_file() for n in names):
            continue  # `from package import submodule`
        missing = sorted(set(names) - _defined_names(target) - {"*"})
        if missing:
            broken.append(f"{tool.name}:{line}: {module} defines no {', '.join(missing)}")
    assert not broken, "\n".join(broken)


def test_the_check_sees_the_tools_imports() -> None:
    # A parser that found nothing would pass every tool above.
    found = [m for tool in TOOLS for _, m, _ in _plugin_imports(tool)]
    assert len(TOOLS) >= 10 and len(found) >= 20
    assert "thaw_slump_mapper.tests.analysis.fine_dem" in found
