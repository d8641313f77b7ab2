"""Without GDAL's Python bindings (a pip-only venv) adding a layer to an existing GeoPackage
says what to do in one line, and leaves the file untouched."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import shapely

from thaw_slump_mapper.core.errors import UserError
from thaw_slump_mapper.engine.vector_io import PolygonFeature, copy_layer_into_geopackage, write_polygons


def test_missing_osgeo_is_a_one_line_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feature = PolygonFeature(shapely.box(0, 0, 10, 10), {"area_m2": 100.0})
    target, source = tmp_path / "inventory.gpkg", tmp_path / "new.gpkg"
    crs = "EPSG:32608"
    write_polygons(target, "old", [feature], crs, {"area_m2": "float"})
    write_polygons(source, "new", [feature], crs, {"area_m2": "float"})
    before = hashlib.md5(target.read_bytes()).hexdigest()
    monkeypatch.setitem(sys.modules, "osgeo", None)  # what `import osgeo` meets where it is not installed
    with pytest.raises(UserError) as err:
        copy_layer_into_geopackage(source, target, "new", replace=False)
    message = str(err.value)
    assert "\n" not in message and "python3-gdal" in message and "inventory.gpkg" in message
    assert hashlib.md5(target.read_bytes()).hexdigest() == before
