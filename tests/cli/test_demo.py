"""`make demo`: the shipped scene may ship (Copernicus Sentinel-2, attributed), is what
tools/make_demo_scene.py derives from ../shared/data, and the demo shows the detections
beside the experts' outlines and says plainly how many it found."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
import shapely

from thaw_slump_mapper.cli.demo_command import ATTRIBUTION, DEMO_REFERENCE, DEMO_SCENE, reference_summary
from thaw_slump_mapper.engine.vector_io import read_polygons

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import make_demo_scene  # noqa: E402


def test_shipped_scene_is_what_the_tool_derives(shared_data, tmp_path):
    scene, reference = make_demo_scene.main(shared_data.parent, tmp_path)
    with rasterio.open(scene) as rebuilt, rasterio.open(DEMO_SCENE) as shipped:
        assert np.array_equal(rebuilt.read(), shipped.read())
        assert rebuilt.transform == shipped.transform and rebuilt.crs == shipped.crs
    assert reference.read_text() == DEMO_REFERENCE.read_text()


def test_scene_is_sentinel2_rgb_with_its_attribution_and_licence():
    with rasterio.open(DEMO_SCENE) as scene:
        assert (scene.count, scene.dtypes[0], scene.res, scene.crs.to_epsg()) == (3, "uint8", (10.0, 10.0), 32608)
        assert scene.tags()["attribution"] == ATTRIBUTION
        assert DEMO_SCENE.stat().st_size < 500_000
        with rasterio.open(DEMO_SCENE) as same:
            bounds = same.bounds
    outlines = read_polygons(DEMO_REFERENCE).features
    assert len(outlines) == 10
    assert all(shapely.box(*bounds).intersects(f.geometry) for f in outlines)
    licence = (REPO / "demo" / "LICENSE").read_text()
    assert "initze" in licence and "Copernicus" in licence and ATTRIBUTION in licence
    assert ATTRIBUTION in (REPO / "demo" / "README.md").read_text()
    assert ATTRIBUTION in (REPO / "README.md").read_text()
    assert list((REPO / "demo").glob("*.tif")) == [DEMO_SCENE], "one scene: tools/qgis_desktop.py loads demo/*.tif"


def test_reference_summary_says_plainly_when_few_are_found():
    squares = [shapely.box(i * 100, 0, i * 100 + 50, 50) for i in range(4)]
    all_found = reference_summary(squares, squares)
    assert "found at IoU > 0.5: 4" in all_found and "NOTE" not in all_found
    one_found = reference_summary(squares[:1] + [shapely.box(1000, 0, 1050, 50)], squares)
    assert "found at IoU > 0.5: 1" in one_found and "touching no reference: 1 of 2" in one_found
    assert "NOTE: the bundled model finds only 1 of the 4" in one_found


def test_demo_runs_and_shows_the_reference(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    ran = subprocess.run([sys.executable, "-m", "thaw_slump_mapper", "demo", "--output-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert (tmp_path / "demo_slumps.gpkg").is_file() and (tmp_path / "demo_preview.png").stat().st_size > 50_000
    assert "expert reference: 10 slumps" in ran.stdout
    found = int(ran.stdout.split("found at IoU > 0.5: ")[1].split(";")[0])
    assert ("NOTE: the bundled model finds only" in ran.stdout) == (found < 5)
    assert ATTRIBUTION in ran.stdout
