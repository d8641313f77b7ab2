"""Shared fixtures. Tests run in a real QGIS 3.22 (pytest-qgis 2.1.0, offscreen Qt).

The plugin is imported as ``thaw_slump_mapper`` through the link `make setup` puts in the
venv, so the checkout folder may have any name.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Processing ships with QGIS outside Python's path.
if "/usr/share/qgis/python/plugins" not in sys.path:
    sys.path.append("/usr/share/qgis/python/plugins")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SHARED", REPO.parent / "shared")) / "data"


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


@pytest.fixture(autouse=True, scope="session")
def _qgis_app_teardown_guard(qgis_app):
    """pytest-qgis 2.1.0 ends the session by disconnecting ``legendLayersAdded`` from
    ``processEvents``; when a test run has left that slot disconnected the disconnect raises,
    ``exitQgis`` is skipped and the interpreter later crashes tearing QGIS down. This fixture
    is torn down first and leaves exactly one such connection, so QGIS always exits cleanly."""
    yield
    if qgis_app is None:
        return
    from qgis.core import QgsProject

    signal = QgsProject.instance().legendLayersAdded
    try:
        signal.disconnect(qgis_app.processEvents)
    except TypeError:
        pass
    signal.connect(qgis_app.processEvents)
