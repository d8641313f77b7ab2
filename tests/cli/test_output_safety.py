"""Issue 10 on the command line: nothing a user made is ever lost, no silent wrong answers.

Each numbered case of the issue is a test here (the QGIS ones are in test_output_safety_qgis.py).
Every test snapshots the md5 of every file in its folder before the run and checks the folder
listing afterwards. Kills use the engine's stage seam (THAW_SLUMP_SIGNAL_AT=<stage>:<SIGNAL>)
so each output stage is hit for certain, and one test sends a real SIGINT mid-run.
"""
from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import sys

import fiona
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from shapely.geometry import LineString, Point, Polygon, box, shape

from thaw_slump_mapper.cli import main
from thaw_slump_mapper.engine.bands import choose_bands
from thaw_slump_mapper.engine.vector_io import PolygonFeature, write_polygons

from ..engine_helpers import chip_rgb, write_raster
from ..output_safety_helpers import assert_unchanged, cli, corrected_geopackage, interrupt_when, layers, snapshot

EPSG_3413 = rasterio.crs.CRS.from_epsg(3413).to_wkt()


def run_main(*args: str) -> subprocess.CompletedProcess:
    """The command line in-process (same code as `python -m thaw_slump_mapper`)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def one_error_line(result: subprocess.CompletedProcess, text: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and text in errors[0], result.stderr


@pytest.fixture()
def work(tmp_path, chip_paths):
    """A folder as a user has it: the scene and an earlier run's corrected GeoPackage + raster."""
    shutil.copy(chip_paths[0], tmp_path / "scene.tif")
    with rasterio.open(chip_paths[0]) as src:
        x0, y0 = src.bounds.left, src.bounds.bottom
    corrected_geopackage(tmp_path / "slumps.gpkg", EPSG_3413, x0, y0)
    (tmp_path / "slumps_probability.tif").write_bytes((tmp_path / "scene.tif").read_bytes()[:5000])
    (tmp_path / "notes.txt").write_text("field notes")
    return tmp_path


def detect_args(work, ckpt, *extra: str):
    return ("detect", str(work / "scene.tif"), *extra, "--checkpoint", str(ckpt), "--threshold", "0.3", "--min-area", "0")


# ---------------------------------------------------------------- case 1
def test_case1_probability_never_replaces_an_existing_file_or_the_input(work, tiny_checkpoint):
    before = snapshot(work)
    existing = run_main(*detect_args(work, tiny_checkpoint, str(work / "new.gpkg"), "--probability", str(work / "notes.txt")))
    assert existing.returncode == 2
    one_error_line(existing, "probability raster")  # .txt is not a GeoTIFF name: refused before any work
    existing_tif = run_main(*detect_args(work, tiny_checkpoint, str(work / "new.gpkg"), "--probability", str(work / "slumps_probability.tif")))
    one_error_line(existing_tif, "already exists")
    scene = run_main(*detect_args(work, tiny_checkpoint, str(work / "new.gpkg"), "--probability", str(work / "scene.tif"), "--overwrite"))
    assert scene.returncode == 2
    one_error_line(scene, "also an input")
    assert_unchanged(work, before)


# ---------------------------------------------------------------- case 3 (and a kill at each stage)
@pytest.mark.parametrize("stage", ["inference", "vectorising", "writing", "committing"])
def test_case3_kill_at_each_output_stage_keeps_the_old_outputs(work, tiny_checkpoint, stage):
    before = snapshot(work)
    killed = cli(*detect_args(work, tiny_checkpoint, str(work / "slumps.gpkg"), "--layer", "thaw_slumps", "--overwrite"),
                 env={"THAW_SLUMP_SIGNAL_AT": f"{stage}:SIGKILL"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    if stage == "committing":
        # Killed inside the GeoPackage's SQLite transaction: the file itself is untouched and
        # SQLite's rollback journal beside it is undone by the next reader.
        assert_unchanged(work, before, new=["slumps.gpkg-journal"])
        assert layers(work / "slumps.gpkg") == ["corrected_by_hand", "thaw_slumps"]
        with fiona.open(work / "slumps.gpkg", layer="thaw_slumps") as src:
            assert [f.properties["review"] for f in src] == ["edited"]
        # The next run (any read-write open) rolls the journal back; the file stays byte-identical.
        again = run_main(*detect_args(work, tiny_checkpoint, str(work / "slumps.gpkg")))
        one_error_line(again, "already holds a layer 'thaw_slumps'")
    assert_unchanged(work, before)


def test_case3_overwrite_replaces_only_the_named_layer_when_complete(work, tiny_checkpoint):
    before = snapshot(work)
    ok = run_main(*detect_args(work, tiny_checkpoint, str(work / "slumps.gpkg"), "--layer", "thaw_slumps", "--overwrite"))
    assert ok.returncode == 0, ok.stderr
    assert layers(work / "slumps.gpkg") == ["corrected_by_hand", "thaw_slumps"]
    with fiona.open(work / "slumps.gpkg", layer="corrected_by_hand") as src:
        assert [f.properties["note"] for f in src] == ["fixed by hand"]
    with fiona.open(work / "slumps.gpkg", layer="thaw_slumps") as src:
        assert {f.properties["review"] for f in src} == {"unreviewed"}
    changed = {name for name, digest in snapshot(work).items() if before.get(name) != digest}
    assert changed == {"slumps.gpkg", "slumps_probability.tif"}


def test_case3_reviewed_layer_needs_its_name_to_be_replaced(work, tiny_checkpoint):
    before = snapshot(work)
    unnamed = run_main(*detect_args(work, tiny_checkpoint, str(work / "slumps.gpkg"), "--overwrite"))
    assert unnamed.returncode == 2
    one_error_line(unnamed, "human-reviewed")
    assert_unchanged(work, before)


# ---------------------------------------------------------------- case 4
def test_case4_sigint_while_vectorising_leaves_nothing(work, tiny_checkpoint):
    before = snapshot(work)
    cancelled = cli(*detect_args(work, tiny_checkpoint, str(work / "fresh.gpkg")), env={"THAW_SLUMP_SIGNAL_AT": "vectorising:SIGINT"})
    assert cancelled.returncode == 130, cancelled.stderr[-2000:]
    assert "cancelled" in cancelled.stderr and "Traceback" not in cancelled.stderr
    assert_unchanged(work, before)  # no *_probability.tif, no empty GeoPackage


def test_case4_second_layer_gets_its_own_probability_raster(work, tiny_checkpoint):
    before = snapshot(work)
    second = run_main(*detect_args(work, tiny_checkpoint, str(work / "slumps.gpkg"), "--layer", "second"))
    assert second.returncode == 0, second.stderr
    after = snapshot(work)
    assert after["slumps_probability.tif"] == before["slumps_probability.tif"]  # the first run's raster is kept
    assert sorted(after) == sorted(set(before) | {"slumps_second_probability.tif"})
    assert layers(work / "slumps.gpkg") == ["corrected_by_hand", "second", "thaw_slumps"]
    # case 8's log: which bands and why (a float 4-band chip is R,G,B plus its outline band)
    assert "bands 1,2,3 for red,green,blue: default for 4 untagged float32 bands: R,G,B" in second.stderr


def test_real_sigint_mid_run_changes_nothing(work, tiny_checkpoint, tmp_path_factory):
    rgb, transform, crs = chip_rgb(sorted((work / "scene.tif").parent.glob("scene.tif"))[0])
    big = np.tile(np.nan_to_num(rgb, neginf=0.0).astype(np.uint8), (1, 4, 4))
    scene = write_raster(tmp_path_factory.mktemp("big") / "big.tif", big, transform, crs)
    before = snapshot(work)
    command = [sys.executable, "-m", "thaw_slump_mapper", "detect", str(scene), str(work / "slumps.gpkg"), "--layer", "thaw_slumps",
               "--overwrite", "--checkpoint", str(tiny_checkpoint), "--batch-size", "1", "--threshold", "0.3"]
    result = interrupt_when(command, "tiles 2/")
    assert result.returncode == 130, result.stdout[-2000:]
    assert "Traceback" not in result.stdout
    assert_unchanged(work, before)


# ---------------------------------------------------------------- case 5
def test_case5_evaluate_refuses_lines_and_points(work):
    lines = work / "lines.gpkg"
    with fiona.open(lines, "w", driver="GPKG", schema={"geometry": "LineString", "properties": {}}, crs_wkt=EPSG_3413) as dst:
        dst.write({"geometry": shapely.geometry.mapping(LineString([(0, 0), (50, 50)])), "properties": {}})
    points = work / "points.gpkg"
    with fiona.open(points, "w", driver="GPKG", schema={"geometry": "Point", "properties": {}}, crs_wkt=EPSG_3413) as dst:
        for i in range(4):
            dst.write({"geometry": shapely.geometry.mapping(Point(i * 10, 0)), "properties": {}})
    before = snapshot(work)
    ref_lines = run_main("evaluate", str(work / "slumps.gpkg"), str(lines), str(work / "s.json"), "--det-layer", "thaw_slumps")
    assert ref_lines.returncode == 2
    one_error_line(ref_lines, "1 LineString geometries, not polygons")
    det_points = run_main("evaluate", str(points), str(work / "slumps.gpkg"), str(work / "s.json"), "--ref-layer", "thaw_slumps")
    assert det_points.returncode == 2
    one_error_line(det_points, "4 Point geometries, not polygons")
    assert_unchanged(work, before)


# ---------------------------------------------------------------- case 7
@pytest.mark.parametrize("batch", ["-3", "0"])
def test_case7_batch_size_must_be_positive(work, tiny_checkpoint, batch):
    before = snapshot(work)
    result = run_main(*detect_args(work, tiny_checkpoint, str(work / "b.gpkg"), "--batch-size", batch))
    assert result.returncode == 2
    one_error_line(result, "batch size")
    assert_unchanged(work, before)


# ---------------------------------------------------------------- case 8
def test_case8_bands_from_colour_tags_then_descriptions_then_defaults():
    rgb = ["red", "green", "blue"]
    tagged = choose_bands(rgb, 4, ["blue", "green", "red", "undefined"], dtype="float32")
    assert tagged.bands == [3, 2, 1] and "colour interpretation" in tagged.reason
    described = choose_bands(rgb, 4, ["gray", "undefined", "undefined", "undefined"], descriptions=["Blue", "Green", "Red", "NIR"], dtype="float32")
    assert described.bands == [3, 2, 1] and "band descriptions" in described.reason
    chips = choose_bands(rgb, 4, ["gray", "undefined", "undefined", "undefined"], dtype="float32")
    assert chips.bands == [1, 2, 3] and "R,G,B plus an extra band" in chips.reason
    planet = choose_bands(rgb, 4, ["gray", "undefined", "undefined", "undefined"], dtype="uint16")
    assert planet.bands == [3, 2, 1] and "PlanetScope" in planet.reason
    assert choose_bands(rgb, 7, explicit=[3, 2, 1]).reason == "as given"


# ---------------------------------------------------------------- case 9
@pytest.mark.parametrize("name, message", [("out.shp", "Shapefile cuts field names"), ("out.txt", "Geoconcept"), ("out.csv", "CSV")])
def test_case9_formats_that_lose_fields_are_refused(work, tiny_checkpoint, name, message):
    before = snapshot(work)
    result = run_main(*detect_args(work, tiny_checkpoint, str(work / name)))
    assert result.returncode == 2
    one_error_line(result, message)
    assert_unchanged(work, before)


def test_case9_orig_wkt_keeps_full_precision_in_degrees(tmp_path, chip_paths, tiny_checkpoint):
    rgb, _, _ = chip_rgb(chip_paths[6])
    transform = Affine(2 / (111320 * np.cos(np.radians(70))), 0, 20.0, 0, -2 / 110574, 70.0)
    scene = write_raster(tmp_path / "geo.tif", np.nan_to_num(rgb, neginf=0.0).astype(np.float32), transform, "EPSG:4326")
    before = snapshot(tmp_path)
    result = run_main("detect", str(scene), str(tmp_path / "geo.gpkg"), "--checkpoint", str(tiny_checkpoint), "--threshold", "0.3", "--min-area", "0")
    assert result.returncode == 0, result.stderr
    assert_unchanged(tmp_path, before, new=["geo.gpkg", "geo_probability.tif"])
    with fiona.open(tmp_path / "geo.gpkg") as src:
        features = list(src)
    assert features
    for feature in features:
        stored = shape(feature.geometry).normalize()
        original = shapely.from_wkt(feature.properties["orig_wkt"])
        if original.geom_type == "Polygon":
            original = shapely.MultiPolygon([original])
        # The same coordinates to the last bit (the old 3 decimals were ~100 m in degrees).
        assert shapely.equals_exact(original.normalize(), stored, tolerance=0.0)
        assert re.search(r"\.\d{9,}", feature.properties["orig_wkt"])


# ---------------------------------------------------------------- case 10
def test_case10_unwritable_or_folder_outputs_fail_before_any_work(work, tiny_checkpoint):
    before = snapshot(work)
    proc = run_main(*detect_args(work, tiny_checkpoint, "/proc/x.gpkg"))
    assert proc.returncode == 2 and "tiles" not in proc.stderr  # refused before inference
    one_error_line(proc, "Cannot write the polygons to /proc")
    (work / "folder.gpkg").mkdir()
    before = snapshot(work)
    folder = run_main(*detect_args(work, tiny_checkpoint, str(work / "folder.gpkg")))
    one_error_line(folder, "is a folder")
    assert "tiles" not in folder.stderr
    assert_unchanged(work, before)


# ---------------------------------------------------------------- case 11
def test_case11_evaluate_bad_output_and_crs_mismatch_are_one_line(work):
    before = snapshot(work)
    proc = run_main("evaluate", str(work / "slumps.gpkg"), str(work / "slumps.gpkg"), "/proc/s.json", "--det-layer", "thaw_slumps",
                    "--ref-layer", "corrected_by_hand")
    assert proc.returncode == 2
    one_error_line(proc, "Cannot write the evaluation summary to /proc")
    # A GeoJSON labelled WGS 84 whose coordinates are metres: the CRS is wrong, say so.
    wrong = work / "metres_as_degrees.geojson"
    write_polygons(wrong, "x", [PolygonFeature(box(-2.0e6, 1.0e6, -1.9e6, 1.1e6), {"id": 1})], "EPSG:4326", {"id": "int"})
    before = snapshot(work)
    mismatch = run_main("evaluate", str(work / "slumps.gpkg"), str(wrong), str(work / "s.json"), "--det-layer", "thaw_slumps")
    assert mismatch.returncode == 2
    one_error_line(mismatch, "are not degrees")
    assert_unchanged(work, before)


# ---------------------------------------------------------------- case 14
def test_case14_checkpoint_errors_are_plain_words(tmp_path):
    from thaw_slump_mapper.core.checkpoint import load_checkpoint
    from thaw_slump_mapper.core.errors import UserError

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    before = snapshot(tmp_path)
    with pytest.raises(UserError) as err:
        load_checkpoint(junk)
    assert_unchanged(tmp_path, before)
    message = str(err.value)
    assert "truncated or damaged" in message and message.endswith("pick a file saved by this plugin.")
    assert "Pytorch" not in message and "central directory" not in message


def test_case14_evaluate_error_starts_its_own_line(work):
    result = cli("evaluate", str(work / "slumps.gpkg"), str(work / "missing.gpkg"), str(work / "s.json"), "--det-layer", "thaw_slumps")
    assert result.returncode == 2
    one_error_line(result, "was not found")


def test_case14_repaired_polygon_warns_and_report_creates_its_folder(work):
    bowtie = Polygon([(0, 0), (100, 100), (100, 0), (0, 100)])  # self-intersecting
    polygons = write_polygons(work / "bowtie.gpkg", "slumps", [PolygonFeature(bowtie, {"id": 1}), PolygonFeature(box(200, 0, 300, 80), {"id": 2})],
                              rasterio.crs.CRS.from_epsg(32633).to_wkt(), {"id": "int"})
    before = snapshot(work)
    morpho = run_main("morphometry", str(polygons), str(work / "m.gpkg"), "--no-solar")
    assert morpho.returncode == 0, morpho.stderr
    assert "warning: bowtie.gpkg" in morpho.stderr and "1 invalid (e.g. self-intersecting) polygon(s) were repaired" in morpho.stderr
    report = run_main("report", str(work / "m.gpkg"), str(work / "reports" / "new" / "r.html"))
    assert report.returncode == 0, report.stderr
    assert_unchanged(work, before, new=["m.gpkg", "reports/", "reports/new/", "reports/new/r.html"])
    again = run_main("report", str(work / "m.gpkg"), str(work / "reports" / "new" / "r.html"))
    one_error_line(again, "already exists")


def test_case5_evaluate_warns_when_layers_do_not_overlap(work):
    far = write_polygons(work / "far.gpkg", "refs", [PolygonFeature(box(0, 0, 50, 50), {"id": 1})], EPSG_3413, {"id": "int"})
    before = snapshot(work)
    result = run_main("evaluate", str(work / "slumps.gpkg"), str(far), str(work / "s.json"), "--det-layer", "thaw_slumps")
    assert result.returncode == 0, result.stderr
    assert "warning: The detection and reference layers do not overlap at all" in result.stderr
    assert_unchanged(work, before, new=["s.json"])


def test_existing_file_that_is_not_a_geopackage_is_never_written_into(work, tiny_checkpoint):
    (work / "empty.gpkg").write_bytes(b"")
    (work / "text.gpkg").write_text("not a database")
    before = snapshot(work)
    for name in ("empty.gpkg", "text.gpkg"):
        result = run_main(*detect_args(work, tiny_checkpoint, str(work / name), "--layer", "x"))
        one_error_line(result, "holds no GeoPackage layer")
    assert_unchanged(work, before)
