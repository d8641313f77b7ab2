"""A pytest plugin that makes the main venv look like one without QGIS, to check that the core's
tests need none (docs/TESTING.md):

    PYTHONPATH=tools/no_qgis .venv/bin/python -m pytest -p block_qgis -p no:pytest_qgis -p no:pytest-qt \
        tests/core tests/engine tests/model tests/analysis

It refuses to import qgis, PyQt5, sip and QGIS's processing, and drops the link `make setup`
writes (a .pth adding .venv/pkg), as in a fresh clone.
"""
from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec
from typing import Optional, Sequence

BLOCKED = ("qgis", "PyQt5", "sip", "processing")


class BlockQgis:
    """A meta-path finder placed first: it answers for the blocked names only, by refusing."""

    def find_spec(self, name: str, path: Optional[Sequence[str]] = None, target: object = None) -> Optional[ModuleSpec]:
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: this run checks that the core needs no QGIS")
        return None


sys.meta_path.insert(0, BlockQgis())
sys.path[:] = [entry for entry in sys.path if not entry.endswith("/.venv/pkg")]
sys.modules.pop("thaw_slump_mapper", None)
