"""The shipped Processing model (detect -> morphometry with a DEM -> report) through qgis_process.bin.

Real inputs: the bundled model on a real Arctic chip, and real ASTER elevations laid over the
chip's footprint (there is no DEM of the chip's site; the terrain numbers are then those of
real terrain, just not of that place). Everything is copied to tmp first, because QGIS writes
.aux.xml files beside rasters it opens.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree.ElementTree import canonicalize

import fiona
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from thaw_slump_mapper.analysis.morphometry import MORPHOMETRY_FIELDS
from thaw_slump_mapper.processing_provider.provider import MODELS_FOLDER

from .test_qgis_process import _qgis_process, headless_env  # noqa: F401 (the fixture is used by name)

REPO = Path(__file__).resolve().parents[2]
MODEL_ID = "thawslump:detect_describe_report"
CHIP = "811a1621-d78c-5331-86dd-f9d9020548f5.tif"  # a chip where the bundled model finds a slump
TERRAIN_FIELDS = ("elev_mean", "slope_mean", "aspect_mean", "tpi_mean", "pisr_mean")


@pytest.fixture(scope="module")
def model_inputs(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model_inputs")
    image = folder / "chip.tif"
    shutil.copy(shared_data / "arctic_rts_chips" / "chips" / CHIP, image)
    with rasterio.open(image) as chip:
        bounds, crs = chip.bounds, chip.crs
    dem = folder / "dem.tif"
    with rasterio.open(shared_data / "dem" / "aster_dem_30m.tif") as src:
        elevations = src.read(1, window=Window(200, 200, 40, 40))
        profile = src.profile
    # 40 cells of 30 m cover the 512 m chip with a 300 m margin for slope and TPI windows.
    profile.update(width=40, height=40, crs=crs, transform=from_origin(bounds.left - 300, bounds.top + 300, 30, 30))
    with rasterio.open(dem, "w", **profile) as out:
        out.write(elevations, 1)
    return image, dem


def test_model_file_is_shipped_and_current(tmp_path):
    """The .model3 in the repository is what tools/make_processing_model.py writes today."""
    shipped = MODELS_FOLDER / "detect_describe_report.model3"
    assert shipped.is_file()
    regenerated = tmp_path / "regenerated.model3"
    made = subprocess.run([sys.executable, str(REPO / "tools" / "make_processing_model.py"), str(regenerated)],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr[-2000:]
    # C14N sorts attributes, whose order Qt's hashing varies from run to run.
    assert canonicalize(from_file=str(regenerated)) == canonicalize(from_file=str(shipped)), (
        "run `make processing-model` and commit the .model3"
    )


def test_model_is_listed_under_the_provider(headless_env):  # noqa: F811
    listed = _qgis_process(headless_env, "list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert MODEL_ID in listed.stdout
    helped = _qgis_process(headless_env, "help", MODEL_ID)
    assert helped.returncode == 0, helped.stderr[-2000:]
    for name in ("IMAGE", "DEM", "detect:SLUMPS", "morphometry:MORPHOMETRY", "report:REPORT", "thawslump:morphometry"):
        assert name in helped.stdout, name


def test_model_runs_detect_morphometry_report(headless_env, model_inputs, tmp_path):  # noqa: F811
    image, dem = model_inputs
    slumps, described, report = tmp_path / "slumps.gpkg", tmp_path / "described.gpkg", tmp_path / "report.html"
    ran = _qgis_process(
        headless_env, "run", MODEL_ID, "--", f"IMAGE={image}", f"DEM={dem}", "BANDS=1,2,3",
        f"detect:SLUMPS={slumps}", f"morphometry:MORPHOMETRY={described}", f"report:REPORT={report}",
    )
    text = ran.stdout + ran.stderr
    assert ran.returncode == 0, text[-4000:]
    assert "Executed 3 algorithms" in text

    with fiona.open(slumps) as layer:
        detected = [dict(f["properties"]) for f in layer]
    assert detected, "the bundled model found no slump on the chip it found one on before"
    assert all(0.0 < d["score_mean"] <= 1.0 and d["area_m2"] > 0 for d in detected)

    with fiona.open(described) as layer:
        assert set(MORPHOMETRY_FIELDS) <= set(layer.schema["properties"])
        rows = [dict(f["properties"]) for f in layer]
    assert len(rows) == len(detected)
    for row in rows:
        assert row["circularity"] is not None and 0 < row["circularity"] <= 1
        for name in TERRAIN_FIELDS:  # the DEM covers the chip: no empty terrain field
            assert row[name] is not None, name
        assert 900 < row["elev_mean"] < 1400  # the ASTER crop's elevation range (978-1348 m)

    html = report.read_text()
    assert "<h1>Thaw slump morphometry" in html and "data:image/png;base64," in html


def test_model_reports_a_missing_dem_in_one_line(headless_env, model_inputs, tmp_path):  # noqa: F811
    image, _ = model_inputs
    ran = _qgis_process(headless_env, "run", MODEL_ID, "--", f"IMAGE={image}", f"report:REPORT={tmp_path / 'r.html'}")
    assert ran.returncode != 0
    assert "DEM" in ran.stdout + ran.stderr
    assert "Traceback" not in ran.stdout + ran.stderr
    assert not (tmp_path / "r.html").exists()
