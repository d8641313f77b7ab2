"""Detection's speed and memory choices (issue 11): precision auto by default, CPU detection
without torch from the cached graph giving the same polygons, and specks dropped as soon as
they are complete giving the same components."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

import thaw_slump_mapper
from thaw_slump_mapper.cli import detect_command
from thaw_slump_mapper.engine.detect import DetectionRequest, run_detection
from thaw_slump_mapper.engine.model_cache import description_file
from thaw_slump_mapper.engine.quantize import cpu_runs_int8, resolve_precision
from thaw_slump_mapper.engine.vectorize import StripVectorizer

DETECT_IN_A_FRESH_PROCESS = """
import json, sys
from pathlib import Path
from thaw_slump_mapper.engine.detect import DetectionRequest, run_detection
raster, out, ckpt, threshold = sys.argv[1:5]
r = run_detection(DetectionRequest(Path(raster), Path(out), checkpoint_path=Path(ckpt), device="cpu", threshold=float(threshold)))
print(json.dumps({"torch": "torch" in sys.modules, "backend": r.backend, "wkb": sorted(f.geometry.wkb_hex for f in r.features)}))
"""


def test_detection_defaults_to_precision_auto_and_an_untrained_checkpoint_stays_fp32():
    assert DetectionRequest(Path("in.tif")).precision == "auto"
    parser = argparse.ArgumentParser()
    detect_command.register(parser.add_subparsers())
    assert parser.parse_args(["detect", "in.tif", "out.gpkg"]).precision == "auto"
    assert parser.parse_args(["detect", "in.tif", "out.gpkg", "--precision", "fp32"]).precision == "fp32"
    assert resolve_precision("auto", trained=True) == ("int8" if cpu_runs_int8() else "fp32")
    assert resolve_precision("auto", trained=False) == "fp32"  # int8 parity is proven on trained weights only
    assert resolve_precision("fp32", trained=True) == "fp32"


def _chip_raster(chip: Path, path: Path) -> Path:
    """A real chip on the tiny model's own 2 m grid, so nothing is resampled."""
    with rasterio.open(chip) as src:
        rgb = np.clip(np.nan_to_num(src.read([1, 2, 3])), 1, 255).astype(np.uint8)
    profile = {"driver": "GTiff", "count": 3, "height": rgb.shape[1], "width": rgb.shape[2], "dtype": "uint8",
               "transform": Affine(2, 0, 0, 0, -2, 2.0 * rgb.shape[1]), "crs": "EPSG:3413"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rgb)
    return path


def _detect_in_fresh_process(raster: Path, out: Path, ckpt: Path, threshold: float, cache: Path) -> dict:
    package_parent = str(Path(thaw_slump_mapper.__file__).resolve().parent.parent)
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), PYTHONPATH=os.pathsep.join([package_parent, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", DETECT_IN_A_FRESH_PROCESS, str(raster), str(out), str(ckpt), str(threshold)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cached_graph_detects_without_torch_and_gives_the_same_polygons(tiny_checkpoint, chip_paths, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    raster = _chip_raster(chip_paths[0], tmp_path / "chip.tif")
    first = run_detection(DetectionRequest(raster, tmp_path / "probe.gpkg", checkpoint_path=tiny_checkpoint, device="cpu"))
    with rasterio.open(first.probability_path) as prob:  # a threshold that surely gives polygons
        percent = prob.read(1)
    threshold = float(np.median(percent[percent != 255])) / 100 + 0.005
    reference = run_detection(DetectionRequest(raster, tmp_path / "ref.gpkg", checkpoint_path=tiny_checkpoint, device="cpu",
                                               threshold=threshold))
    expected = sorted(f.geometry.wkb_hex for f in reference.features)
    assert expected and description_file(tiny_checkpoint).is_file()

    torch_free = _detect_in_fresh_process(raster, tmp_path / "a.gpkg", tiny_checkpoint, threshold, cache)
    assert torch_free["torch"] is False and torch_free["backend"] == "onnxruntime"
    assert torch_free["wkb"] == expected

    description_file(tiny_checkpoint).write_text("{ damaged")  # any doubt about the cache: the full load decides
    full = _detect_in_fresh_process(raster, tmp_path / "b.gpkg", tiny_checkpoint, threshold, cache)
    assert full["torch"] is True and full["wkb"] == expected


def test_dropping_small_components_while_vectorising_equals_dropping_them_at_the_end():
    rng = np.random.default_rng(3)
    mask = rng.random((96, 80)) > 0.75  # specks everywhere
    mask[10:70, 20:30] = True  # and blobs that cross the 16-row strip borders
    mask[40:45, 50:78] = True
    scores = rng.random(mask.shape).astype(np.float32)
    big_enough = lambda component: component.pixel_count >= 12  # noqa: E731

    def components(keep=None):
        vectorizer = StripVectorizer(Affine(3, 0, 0, 0, -3, 288.0), mask.shape[1], keep)
        for r0 in range(0, mask.shape[0], 16):
            vectorizer.add_strip(r0, mask[r0:r0 + 16], scores[r0:r0 + 16])
        return vectorizer.finish()

    everything = components()
    kept = components(big_enough)
    assert len(everything) > len(kept) >= 2
    expected = [c for c in everything if big_enough(c)]
    assert [c.geometry.wkb for c in kept] == [c.geometry.wkb for c in expected]
    assert [(c.pixel_count, c.score_sum, c.score_max) for c in kept] == [(c.pixel_count, c.score_sum, c.score_max) for c in expected]
