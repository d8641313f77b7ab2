"""`morphometry` end to end: CLI, file output with every field, empty values off the DEM,
the no-overwrite rule, and the Processing algorithm in real QGIS."""
from __future__ import annotations

import warnings

import fiona
import pytest
import shapely

from thaw_slump_mapper.analysis.morphometry import MORPHOMETRY_FIELDS, MorphometryWarning, compute_morphometry
from thaw_slump_mapper.cli import main
from thaw_slump_mapper.engine.vector_io import PolygonFeature, write_polygons

from ..morphometry_helpers import crop_dem, slump_shapes_on_dem


@pytest.fixture(scope="module")
def case(shared_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("morpho_cli")
    dem = crop_dem(shared_data, work / "dem.tif")
    geoms = slump_shapes_on_dem(shared_data, dem, n=5)
    off_dem = shapely.affinity.translate(geoms[0], 100_000, 0)  # far east of the DEM
    features = [PolygonFeature(g, {"name": f"s{i}"}) for i, g in enumerate(geoms + [off_dem])]
    polygons = write_polygons(work / "in.gpkg", "slumps", features, "EPSG:32718", {"name": "str:10"})
    return work, dem, polygons


def test_cli_fills_every_field_on_a_real_dem(case, capsys):
    work, dem, polygons = case
    out = work / "out.gpkg"
    assert main(["morphometry", str(polygons), str(out), "--dem", str(dem)]) == 0
    assert "off the DEM" in capsys.readouterr().err
    with fiona.open(out, layer="morphometry") as src:
        assert set(MORPHOMETRY_FIELDS) <= set(src.schema["properties"])
        rows = [dict(f.properties) for f in src]
    assert [r["name"] for r in rows] == ["s0", "s1", "s2", "s3", "s4", "s5"]
    for r in rows[:5]:
        assert all(r[k] is not None for k in MORPHOMETRY_FIELDS), r
        assert r["facing"] in ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
        assert 0.0 < r["pisr_mean"] < 10.0
    assert all(rows[5][k] is None for k in ("elev_mean", "slope_mean", "tpi_mean", "pisr_mean"))
    assert rows[5]["area_m2"] == pytest.approx(rows[0]["area_m2"])


def test_refuses_to_overwrite_and_reports_a_bad_dem(case, capsys):
    work, dem, polygons = case
    out = work / "twice.gpkg"
    assert main(["morphometry", str(polygons), str(out), "--no-solar"]) == 0
    assert main(["morphometry", str(polygons), str(out), "--no-solar"]) == 2
    assert "already holds" in capsys.readouterr().err
    assert main(["morphometry", str(polygons), str(work / "x.gpkg"), "--dem", str(work / "missing.tif")]) == 2
    assert "DEM not found" in capsys.readouterr().err


def test_off_dem_warning_from_the_api(case):
    work, dem, polygons = case
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compute_morphometry(polygons, work / "api.gpkg", dem, solar_radiation=False)
    assert any(issubclass(w.category, MorphometryWarning) for w in caught)


def test_processing_algorithm(case, qgis_processing):
    import processing
    from qgis.core import QgsApplication, QgsVectorLayer

    from thaw_slump_mapper.processing_provider.morphometry_algorithm import MorphometryAlgorithm
    from thaw_slump_mapper.processing_provider.report_algorithm import ReportAlgorithm

    work, dem, polygons = case
    registry = QgsApplication.processingRegistry()
    alg = MorphometryAlgorithm()
    alg.initAlgorithm()
    assert alg.name() == "morphometry" and ReportAlgorithm().name() == "report"
    result = processing.run(alg, {"INPUT": f"{polygons}|layername=slumps", "DEM": str(dem), "SOLAR": False,
                                  "OUTPUT": str(work / "proc.gpkg")})
    layer = QgsVectorLayer(result["OUTPUT"], "out", "ogr")
    assert layer.featureCount() == 6
    names = [f.name() for f in layer.fields()]
    assert "slope_mean" in names and "name" in names
    html = processing.run(ReportAlgorithm(), {"INPUT": result["OUTPUT"], "OUTPUT": str(work / "proc.html")})["OUTPUT"]
    assert "data:image/png;base64" in open(html, encoding="utf-8").read()
    del registry
