"""Helpers for the QGIS-plugin tests (provider registration, real chip layers)."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsRasterLayer

# The chips are RGB plus a 0/1 mask in band 4 (../shared/data/README.md): feed bands 1-3.
CHIP_BANDS = "1,2,3"


# The registry keeps the C++ provider but not its Python side: once the last Python reference
# goes (a module fixture's teardown), its algorithms answer with empty names. Hold it here.
_REGISTERED: list = []


def register_provider():
    """Register the plugin's provider once per session (as initProcessing does in QGIS)."""
    from thaw_slump_mapper.processing_provider.provider import PROVIDER_ID, ThawSlumpProvider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById(PROVIDER_ID)
    if provider is not None and not isinstance(provider, ThawSlumpProvider):  # its Python side is gone
        registry.removeProvider(PROVIDER_ID)
        provider = None
    if provider is None:
        provider = ThawSlumpProvider()
        assert registry.addProvider(provider)
        _REGISTERED.append(provider)
    return provider


def chip_layer(path: Path, name: str = "chip") -> QgsRasterLayer:
    layer = QgsRasterLayer(str(path), name, "gdal")
    assert layer.isValid(), f"cannot open {path}"
    return layer
