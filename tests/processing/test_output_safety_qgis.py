"""Issue 10 in real QGIS 3.22: Processing (processing.run and qgis_process.bin) and the dock.

Each test snapshots the md5 of every file in its folder first and checks the listing after.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException, QgsProject, QgsRasterLayer, QgsVectorLayer
from shapely.geometry import box

from thaw_slump_mapper.engine.vector_io import PolygonFeature, write_polygons

from ..conftest import missing
from ..engine_helpers import chip_rgb, write_raster
from ..output_safety_helpers import (
    QGIS_PROCESS,
    assert_unchanged,
    corrected_geopackage,
    interrupt_when,
    layers,
    qgis_process,
    qgis_process_env,
    snapshot,
)
from ..plugin_helpers import register_provider

EPSG_3413 = rasterio.crs.CRS.from_epsg(3413).to_wkt()


@pytest.fixture(scope="module")
def provider(qgis_processing):
    return register_provider()


@pytest.fixture(scope="module")
def headless(tmp_path_factory):
    if not Path(QGIS_PROCESS).is_file():
        missing("qgis_process.bin is not installed (Debian package qgis)")
    return qgis_process_env(tmp_path_factory.mktemp("qgis_process_safety"))


@pytest.fixture()
def work(tmp_path, chip_paths):
    shutil.copy(chip_paths[0], tmp_path / "scene.tif")
    with rasterio.open(chip_paths[0]) as src:
        x0, y0 = src.bounds.left, src.bounds.bottom
    corrected_geopackage(tmp_path / "slumps.gpkg", EPSG_3413, x0, y0)
    (tmp_path / "old_probability.tif").write_bytes(b"an earlier run's raster")
    return tmp_path


def detect_params(work: Path, ckpt: Path, **extra) -> dict:
    params = {"INPUT": str(work / "scene.tif"), "CHECKPOINT": str(ckpt), "BANDS": "1,2,3", "THRESHOLD": 0.3, "MIN_AREA": 0, "DEVICE": 1}
    params.update(extra)
    return params


def run(algorithm: str, params: dict):
    import processing

    return processing.run(algorithm, params)


def cli_params(params: dict) -> list:
    return [f"{key}={value}" for key, value in params.items()]


# qgis_process loads every raster parameter as a QGIS layer before any algorithm code runs, and
# QGIS then caches statistics in <raster>.aux.xml beside it (gdal:translate does the same); the
# raster itself is untouched. That one file is QGIS's, allowed by name below.
QGIS_STATISTICS = "scene.tif.aux.xml"


# ---------------------------------------------------------------- case 2 under qgis_process
def test_case2_qgis_process_never_replaces_a_geopackage_or_its_layers(headless, work, tiny_checkpoint):
    before = snapshot(work)
    whole = qgis_process(headless, "thawslump:detect", *cli_params(detect_params(work, tiny_checkpoint, OUTPUT=work / "slumps.gpkg")))
    assert whole.returncode != 0
    assert "already holds a layer 'thaw_slumps'" in whole.stdout + whole.stderr and "Traceback" not in whole.stdout + whole.stderr
    assert_unchanged(work, before, new=[QGIS_STATISTICS])
    before = snapshot(work)
    third = qgis_process(
        headless, "thawslump:detect",
        *cli_params(detect_params(work, tiny_checkpoint, OUTPUT=f"ogr:dbname='{work / 'slumps.gpkg'}' table=\"third\" (geom)")),
    )
    assert third.returncode == 0, (third.stdout + third.stderr)[-3000:]
    assert layers(work / "slumps.gpkg") == ["corrected_by_hand", "thaw_slumps", "third"]
    for name in ("corrected_by_hand", "thaw_slumps"):
        with fiona.open(work / "slumps.gpkg", layer=name) as src:
            assert [f.properties["note"] for f in src] == ["fixed by hand"]
    after = snapshot(work)
    assert sorted(after) == sorted(set(before) | {"slumps_third_probability.tif", QGIS_STATISTICS})
    assert all(after[name] == digest for name, digest in before.items() if name != "slumps.gpkg")


def test_case2_named_layer_and_overwrite_rules_in_processing(provider, work, tiny_checkpoint):
    before = snapshot(work)
    uri = f"ogr:dbname='{work / 'slumps.gpkg'}' table=\"corrected_by_hand\" (geom)"
    with pytest.raises(QgsProcessingException, match="already holds a layer 'corrected_by_hand'"):
        run("thawslump:detect", detect_params(work, tiny_checkpoint, OUTPUT=uri))
    # OVERWRITE with the default layer: thaw_slumps holds review edits and was not named.
    with pytest.raises(QgsProcessingException, match="human-reviewed"):
        run("thawslump:detect", detect_params(work, tiny_checkpoint, OUTPUT=str(work / "slumps.gpkg"), OVERWRITE=True))
    assert_unchanged(work, before)
    # Named and OVERWRITE: exactly that layer is replaced, the other survives.
    result = run("thawslump:detect", detect_params(work, tiny_checkpoint, OUTPUT=uri, OVERWRITE=True))
    assert result["OUTPUT"] == f"{work / 'slumps.gpkg'}|layername=corrected_by_hand"
    assert QgsVectorLayer(result["OUTPUT"], "x", "ogr").isValid()
    with fiona.open(work / "slumps.gpkg", layer="thaw_slumps") as src:
        assert [f.properties["note"] for f in src] == ["fixed by hand"]
    with fiona.open(work / "slumps.gpkg", layer="corrected_by_hand") as src:
        assert {f.properties["review"] for f in src} == {"unreviewed"}


# ---------------------------------------------------------------- case 1, 9, 10 in Processing
@pytest.mark.parametrize(
    "extra, message",
    [
        ({"OUTPUT": "NEW.gpkg", "PROBABILITY": "old_probability.tif"}, "already exists"),  # case 1
        ({"OUTPUT": "NEW.gpkg", "PROBABILITY": "scene.tif", "OVERWRITE": True}, "also an input"),  # case 1
        ({"OUTPUT": "out.txt"}, "Geoconcept"),  # case 9
        ({"OUTPUT": "out.shp"}, "Shapefile cuts field names"),  # case 9
        ({"OUTPUT": "/proc/x.gpkg"}, "Cannot write the polygons to /proc"),  # case 10
        ({"OUTPUT": "folder.gpkg"}, "is a folder"),  # case 10
    ],
)
def test_cases_1_9_10_outputs_refused_before_any_work(provider, work, tiny_checkpoint, extra, message):
    (work / "folder.gpkg").mkdir()
    before = snapshot(work)
    params = {key: (str(work / value) if key in ("OUTPUT", "PROBABILITY") and not value.startswith("/") else value) for key, value in extra.items()}
    progress = []

    from qgis.core import QgsProcessingFeedback

    class Feedback(QgsProcessingFeedback):
        def setProgressText(self, text):  # noqa: N802
            progress.append(text)

    import processing

    with pytest.raises(QgsProcessingException, match=message):
        processing.run("thawslump:detect", detect_params(work, tiny_checkpoint, **params), feedback=Feedback())
    assert not any("tiles" in text for text in progress)  # refused before inference
    assert_unchanged(work, before)


# ---------------------------------------------------------------- case 12: Ctrl-C under qgis_process
def test_case12_sigint_under_qgis_process_exits_non_zero_and_changes_nothing(headless, work, tiny_checkpoint, chip_paths):
    rgb, transform, crs = chip_rgb(chip_paths[0])
    big = np.tile(np.nan_to_num(rgb, neginf=0.0).astype(np.uint8), (1, 4, 4))
    scene = write_raster(work.parent / f"{work.name}_big.tif", big, transform, crs)
    before = snapshot(work)
    params = detect_params(work, tiny_checkpoint, INPUT=scene, OUTPUT=f"{work / 'slumps.gpkg'}|layername=thaw_slumps", OVERWRITE="true")
    command = [QGIS_PROCESS, "run", "thawslump:detect", "--", *cli_params(params)]
    result = interrupt_when(command, "tiles 8/", env=headless)  # batches of 4 tiles
    assert result.returncode not in (0, None), result.stdout[-3000:]
    assert "Cancelled: no output was written" in result.stdout and "Traceback" not in result.stdout
    assert_unchanged(work, before)  # the big scene lies outside this folder


# ---------------------------------------------------------------- case 6: morphometry inputs
def test_case6_morphometry_refuses_points_and_empty_layers(provider, work):
    points = work / "points.gpkg"
    with fiona.open(points, "w", driver="GPKG", schema={"geometry": "Point", "properties": {}}, crs_wkt=EPSG_3413) as dst:
        dst.write({"geometry": {"type": "Point", "coordinates": (0.0, 0.0)}, "properties": {}})
    empty = write_polygons(work / "empty.gpkg", "slumps", [], EPSG_3413, {"id": "int"})
    before = snapshot(work)
    with pytest.raises(QgsProcessingException, match="not polygons"):
        run("thawslump:morphometry", {"INPUT": str(points), "SOLAR": False, "OUTPUT": str(work / "m1.gpkg")})
    with pytest.raises(QgsProcessingException, match="holds no polygons"):
        run("thawslump:morphometry", {"INPUT": str(empty), "SOLAR": False, "OUTPUT": str(work / "m2.gpkg")})
    assert_unchanged(work, before)


# ---------------------------------------------------------------- case 13: install hint, dock DEM
@pytest.mark.parametrize(
    "algorithm, module",
    [("morphometry", "analysis.morphometry"), ("evaluate", "analysis.evaluation"), ("report", "analysis.report"),
     ("export_labels", "analysis.label_export")],
)
def test_case13_missing_package_gives_the_install_hint(provider, work, monkeypatch, algorithm, module, chip_paths):
    polygons = write_polygons(work / "p.gpkg", "slumps", [PolygonFeature(box(0, 0, 50, 50), {"id": 1})], EPSG_3413, {"id": "int"})
    monkeypatch.setitem(sys.modules, f"thaw_slump_mapper.{module}", None)  # import raises ImportError
    params = {
        "morphometry": {"INPUT": str(polygons), "SOLAR": False, "OUTPUT": str(work / "m.gpkg")},
        "evaluate": {"DETECTIONS": str(polygons), "REFERENCE": str(polygons), "OUTPUT": str(work / "s.json")},
        "report": {"INPUT": str(polygons), "OUTPUT": str(work / "r.html")},
        "export_labels": {"IMAGE": str(work / "scene.tif"), "LABELS": str(polygons), "OUTPUT": str(work / "chips")},
    }[algorithm]
    before = snapshot(work)
    with pytest.raises(QgsProcessingException, match="A Python package the plugin needs is missing"):
        run(f"thawslump:{algorithm}", params)
    assert_unchanged(work, before)


def test_case13_dock_with_a_dem_that_is_not_a_file(qgis_app, qgis_iface, qgis_new_project, work, tiny_checkpoint, chip_paths):
    from qgis.core import QgsSettings

    from thaw_slump_mapper.ui.dock import SETTINGS_PREFIX, DetectDock

    dem_file = work.parent / f"{work.name}_dem.tif"
    shutil.copy(chip_paths[1], dem_file)
    dem = QgsRasterLayer(str(dem_file), "dem", "gdal")
    scene = QgsRasterLayer(str(work / "scene.tif"), "scene", "gdal")
    assert dem.isValid() and scene.isValid()
    QgsProject.instance().addMapLayers([scene, dem])
    dem_file.unlink()  # the layer stays in the project, its file is gone
    before = snapshot(work)
    dock = DetectDock(qgis_iface)
    try:
        dock.raster_combo.setLayer(scene)
        dock.checkpoint_widget.setFilePath(str(tiny_checkpoint))
        dock.dem_combo.setLayer(dem)
        dock.output_widget.setFilePath(str(work / "dock.gpkg"))
        assert dock.start_detection() is None  # refused in one line, not raised inside the Qt slot
        assert "was not found" in dock.log_view.toPlainText()
        assert dock.task is None and dock.run_button.isEnabled()
        # case 8 in the dock: the band choice and its reason are in the log
        assert "bands 1,2,3 (default for 4 untagged float32 bands: R,G,B" in dock.log_view.toPlainText()
    finally:
        dock.close()
        dock.deleteLater()
        QgsSettings().remove(SETTINGS_PREFIX.rstrip("/"))
    assert_unchanged(work, before)


# ---------------------------------------------------------------- case 11 under qgis_process
def test_case11_qgis_process_crs_mismatch_is_one_line(headless, work):
    wrong = write_polygons(work / "metres.geojson", "x", [PolygonFeature(box(-2.0e6, 1.0e6, -1.9e6, 1.1e6), {"id": 1})], "EPSG:4326", {"id": "int"})
    before = snapshot(work)
    result = qgis_process(
        headless, "thawslump:evaluate", f"DETECTIONS={work / 'slumps.gpkg'}|layername=thaw_slumps", f"REFERENCE={wrong}",
        f"OUTPUT={work / 's.json'}",
    )
    text = result.stdout + result.stderr
    assert result.returncode != 0 and "are not degrees" in text and "Traceback" not in text, text[-3000:]
    assert_unchanged(work, before)


# ---------------------------------------------------------------- a kill inside the final commit, under qgis_process
def test_kill_while_committing_a_processing_layer_changes_nothing(headless, work):
    polygons = write_polygons(
        work.parent / f"{work.name}_in.gpkg", "slumps", [PolygonFeature(box(0, 0, 80, 60), {"id": 1})], EPSG_3413, {"id": "int"}
    )
    before = snapshot(work)
    env = dict(headless, THAW_SLUMP_SIGNAL_AT="committing:SIGKILL")
    killed = subprocess.run(
        [QGIS_PROCESS, "run", "thawslump:morphometry", "--", f"INPUT={polygons}", "SOLAR=false",
         f"OUTPUT=ogr:dbname='{work / 'slumps.gpkg'}' table=\"morphometry\" (geom)"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert killed.returncode == -9, (killed.stdout + killed.stderr)[-2000:]
    # SQLite's journal of the unfinished transaction may remain; the GeoPackage is byte-identical.
    after = snapshot(work)
    assert all(after[name] == digest for name, digest in before.items())
    assert set(after) - set(before) <= {"slumps.gpkg-journal"}
    assert layers(work / "slumps.gpkg") == ["corrected_by_hand", "thaw_slumps"]
