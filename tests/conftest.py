"""Shared fixtures for every test folder. Nothing here imports QGIS or starts it: the core's
tests (tests/core, engine, model, analysis) run with plain `pytest` in a venv without QGIS
(`make test-core`). QGIS fixtures live in tests/qgis_fixtures.py, which only the conftests of
tests/cli, tests/processing and tests/ui import.

The plugin is imported as ``thaw_slump_mapper``. `make setup` links the checkout into the venv
under that name; without that link (a fresh clone, any folder name) this conftest makes one.
"""
from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Processing ships with QGIS outside Python's path (a plain path entry: importing nothing).
if "/usr/share/qgis/python/plugins" not in sys.path:
    sys.path.append("/usr/share/qgis/python/plugins")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SHARED", REPO.parent / "shared")) / "data"
PACKAGE = "thaw_slump_mapper"


def _make_package_importable() -> None:
    """Link the checkout as ``thaw_slump_mapper`` into a temporary folder on sys.path and on
    PYTHONPATH (the tests also start `python -m thaw_slump_mapper` subprocesses), unless the
    name already resolves (the venv's link, or a checkout folder of that name)."""
    if importlib.util.find_spec(PACKAGE) is not None:
        return
    link_parent = Path(tempfile.mkdtemp(prefix="tsm-package-"))
    (link_parent / PACKAGE).symlink_to(REPO, target_is_directory=True)
    atexit.register(shutil.rmtree, link_parent, True)  # removes the link, never the checkout
    sys.path.insert(0, str(link_parent))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(link_parent), os.environ.get("PYTHONPATH")]))


_make_package_importable()


def _torch_threads() -> None:
    # Two cores on the dev and CI machines: keep tests from oversubscribing them.
    import torch

    torch.set_num_threads(2)


_torch_threads()


def missing(what: str) -> None:
    """Skip for a missing outside thing, but fail under `make test`, which installs
    everything itself (THAW_SLUMP_STRICT=1): there a skip would hide a broken install step."""
    if os.environ.get("THAW_SLUMP_STRICT") == "1":
        pytest.fail(f"{what}, although `make test` should have installed it", pytrace=False)
    pytest.skip(what)


def pytest_configure(config: pytest.Config) -> None:
    # Without pytest-qgis (a venv without QGIS, or `-p no:pytest_qgis`) a test asking for a
    # QGIS fixture is skipped with that reason instead of erroring on an unknown fixture.
    if not config.pluginmanager.hasplugin("pytest_qgis"):
        from . import qgis_absent

        config.pluginmanager.register(qgis_absent, "thaw_slump_mapper_qgis_absent")


@pytest.fixture()
def gdal_python_bindings() -> None:
    """engine/vector_io adds a layer to an existing GeoPackage through GDAL's Python bindings
    (osgeo), which come with QGIS and Debian's python3-gdal but not from pip."""
    if importlib.util.find_spec("osgeo") is None:
        missing("GDAL's Python bindings (osgeo; Debian python3-gdal, always present in QGIS) are not installed: "
                "engine/vector_io needs them to add a layer to an existing GeoPackage")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        missing(f"the real data folder {SHARED_DATA} is missing (CI puts ../shared beside the clone)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def chip_paths(shared_data: Path) -> list:
    return sorted((shared_data / "arctic_rts_chips" / "chips").glob("*.tif"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A small, untrained network in the real checkpoint format (fast on 2 cores)."""
    from thaw_slump_mapper.tests.checkpoints import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")
