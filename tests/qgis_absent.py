"""Stand-ins for pytest-qgis's fixtures, registered by tests/conftest.py only when pytest-qgis is
not loaded: a test that needs QGIS then says so in its skip reason (or fails under
THAW_SLUMP_STRICT=1) instead of erroring on an unknown fixture."""
from __future__ import annotations

import pytest

from .conftest import missing

REASON = "QGIS is not available here (pytest-qgis is not loaded); `make test` runs this test in real QGIS"


@pytest.fixture(scope="session")
def qgis_app() -> None:
    missing(REASON)


@pytest.fixture(scope="session")
def qgis_processing() -> None:
    missing(REASON)


@pytest.fixture(scope="session")
def qgis_iface() -> None:
    missing(REASON)


@pytest.fixture()
def qgis_new_project() -> None:
    missing(REASON)
