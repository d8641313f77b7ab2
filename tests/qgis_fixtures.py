"""QGIS fixtures for the folders whose tests run in QGIS (tests/cli, tests/processing, tests/ui);
their conftests import from here. tests/conftest.py must stay free of QGIS."""
from __future__ import annotations

import pytest


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
