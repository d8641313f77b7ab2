"""The package graph, read from the source with ``ast`` (nothing is imported).

Layering, lowest first: core <- engine <- analysis <- model. A package imports only packages
below it, so there is no loop, and no front end (cli, ui, processing_provider, plugin). Neither
they nor cli/ import QGIS or Qt. The two QGIS front ends, ui/ and processing_provider/, do not
import each other: what they share lives in a module both import.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import pytest

from ..conftest import REPO

PACKAGE = "thaw_slump_mapper"
LAYERS = ("core", "engine", "analysis", "model")
FRONT_ENDS = ("cli", "ui", "processing_provider", "plugin")
QGIS_MODULES = ("qgis", "PyQt5", "PyQt6", "sip", "processing")
SEPARATE_FRONT_ENDS = ("ui", "processing_provider")


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to an absolute dotted name."""

    source: str  # the importing file, relative to the repository root
    line: int
    target: str  # "engine.detect" for the plugin's own modules, "qgis.core" for outside ones
    own: bool  # True when the target is a module of the plugin


def _module_parts(path: Path, root: Path) -> List[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _from_import_targets(node: ast.ImportFrom, package_parts: Sequence[str]) -> Iterator[tuple]:
    """(dotted target, is own) for ``from X import a, b``: a relative import climbs from the
    file's package; ``from thaw_slump_mapper import engine`` names the package in ``names``."""
    if node.level:
        base = list(package_parts[: len(package_parts) - (node.level - 1)])
        module = base + (node.module.split(".") if node.module else [])
        own = True
    elif node.module == PACKAGE or (node.module or "").startswith(PACKAGE + "."):
        module, own = node.module.split(".")[1:], True
    else:
        yield node.module or "", False
        return
    if module:
        yield ".".join(module), own
    else:  # `from .. import engine` at the top, or `from thaw_slump_mapper import engine`
        for alias in node.names:
            yield alias.name, own


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    """Every import in one file, including those inside functions."""
    source = str(path.relative_to(root))
    parts = _module_parts(path, root)
    package_parts = parts if path.name == "__init__.py" else parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                own = alias.name == PACKAGE or alias.name.startswith(PACKAGE + ".")
                target = ".".join(alias.name.split(".")[1:]) if own else alias.name
                yield Import(source, node.lineno, target, own)
        elif isinstance(node, ast.ImportFrom):
            for target, own in _from_import_targets(node, package_parts):
                yield Import(source, node.lineno, target, own)


def package_imports(root: Path, package: str) -> List[Import]:
    return [found for path in sorted((root / package).rglob("*.py")) if "__pycache__" not in path.parts
            for found in imports_of(path, root)]


def top(target: str) -> str:
    return target.split(".")[0]


def layering_violations(root: Path) -> List[str]:
    """Upward imports between the layers (every loop has one) and imports of a front end."""
    rank: Dict[str, int] = {name: index for index, name in enumerate(LAYERS)}
    problems = []
    for package in LAYERS:
        allowed = ", ".join(LAYERS[: rank[package]]) or "nothing of the plugin's other packages"
        for found in package_imports(root, package):
            imported = top(found.target)
            if not found.own or imported == package:
                continue
            if imported in FRONT_ENDS:
                problems.append(f"{found.source}:{found.line} imports the front end {found.target}")
            elif imported in rank and rank[imported] > rank[package]:
                problems.append(f"{found.source}:{found.line} imports {found.target}, above it "
                                f"({package} may import {allowed})")
    return problems


def qgis_violations(root: Path, packages: Sequence[str] = LAYERS) -> List[str]:
    return [f"{found.source}:{found.line} imports {found.target}"
            for package in packages for found in package_imports(root, package)
            if not found.own and top(found.target) in QGIS_MODULES]


def front_end_violations(root: Path) -> List[str]:
    first, second = SEPARATE_FRONT_ENDS
    return [f"{found.source}:{found.line} imports {found.target}"
            for package, other in ((first, second), (second, first))
            for found in package_imports(root, package) if found.own and top(found.target) == other]


def missing_packages(root: Path) -> List[str]:
    return [name for name in (*LAYERS, *SEPARATE_FRONT_ENDS) if not (root / name / "__init__.py").is_file()]


def _report(problems: List[str], rule: str) -> Optional[str]:
    return f"{len(problems)} import(s) break the rule '{rule}':\n  " + "\n  ".join(problems) if problems else None


def test_every_package_of_the_graph_exists():
    """Otherwise the checks below would pass on a folder that is not there."""
    assert missing_packages(REPO) == [], "package folders missing (renamed? update LAYERS here and docs/ARCHITECTURE.md)"


def test_layers_import_only_downward():
    problems = layering_violations(REPO)
    assert not problems, _report(problems, "core <- engine <- analysis <- model, no front ends")


def test_core_packages_import_no_qgis_or_qt():
    problems = qgis_violations(REPO)
    assert not problems, _report(problems, "no qgis / Qt in core, engine, analysis, model")


def test_the_command_line_imports_no_qgis_or_qt():
    """docs/ARCHITECTURE.md: the command line runs without QGIS."""
    problems = qgis_violations(REPO, ("cli",))
    assert not problems, _report(problems, "no qgis / Qt in cli")


def test_ui_and_processing_provider_do_not_import_each_other():
    problems = front_end_violations(REPO)
    assert not problems, _report(problems, "ui/ and processing_provider/ share code through a common module")


# The checker itself, on a small made-up tree: each rule must catch what it is there for.
def _tree(root: Path, files: Dict[str, str]) -> Path:
    for name in (*LAYERS, *SEPARATE_FRONT_ENDS):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text("")
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_checker_catches_upward_relative_and_absolute_imports(tmp_path):
    root = _tree(tmp_path, {
        "engine/detect.py": "from ..model.checkpoint import load\nfrom ..core import errors\n",
        "engine/batch/worker.py": "from ...analysis import evaluation\nfrom .. import tiling\n",
        "analysis/evaluation.py": "import thaw_slump_mapper.model.chip_format\nfrom thaw_slump_mapper import engine\n",
        "model/training.py": "from ..analysis.evaluation import score\nfrom ..engine import detect\n",
        "core/errors.py": "def f():\n    from thaw_slump_mapper.ui import dock\n",
    })
    assert sorted(layering_violations(root)) == [
        "analysis/evaluation.py:1 imports model.chip_format, above it (analysis may import core, engine)",
        "core/errors.py:2 imports the front end ui",
        "engine/batch/worker.py:1 imports analysis, above it (engine may import core)",
        "engine/detect.py:1 imports model.checkpoint, above it (engine may import core)",
    ]


def test_the_checker_catches_qgis_and_crossed_front_ends(tmp_path):
    root = _tree(tmp_path, {
        "engine/a.py": "import qgis.core\n",
        "model/b.py": "def f():\n    from qgis.PyQt.QtCore import QObject\n",
        "analysis/c.py": "from PyQt5 import QtCore\nimport numpy\n",
        "ui/dock.py": "from ..processing_provider.helpers import layer_path\nfrom ..qgis_common import x\n",
        "processing_provider/alg.py": "from thaw_slump_mapper.ui import dock\n",
    })
    assert sorted(qgis_violations(root)) == [
        "analysis/c.py:1 imports PyQt5", "engine/a.py:1 imports qgis.core", "model/b.py:2 imports qgis.PyQt.QtCore"]
    assert sorted(front_end_violations(root)) == [
        "processing_provider/alg.py:1 imports ui", "ui/dock.py:1 imports processing_provider.helpers"]


def test_the_checker_names_a_missing_package(tmp_path):
    root = _tree(tmp_path, {})
    (root / "core" / "__init__.py").unlink()
    assert missing_packages(root) == ["core"]


@pytest.mark.parametrize("package", LAYERS)
def test_the_checker_sees_imports_in_every_layer_that_has_files(package):
    """A guard against a checker that reads nothing: each existing layer has imports to read."""
    if not (REPO / package).is_dir():
        pytest.fail(f"{package}/ is missing")
    assert package_imports(REPO, package), f"no imports found in {package}/"
