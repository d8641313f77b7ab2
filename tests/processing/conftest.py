"""Tests of a QGIS front end: they run in real QGIS 3.22 (pytest-qgis 2.1.0)."""
from ..qgis_fixtures import _qgis_app_teardown_guard  # noqa: F401 (an autouse fixture, used by name)
