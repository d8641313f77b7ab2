"""Polygons made while the model runs (engine/stream_vectorize.py) equal those of the former
second pass over the stored probability raster, on a real-chip mosaic that spans several
tile rows (so components are joined across row blocks)."""
from __future__ import annotations

import numpy as np
import rasterio
from affine import Affine

from thaw_slump_mapper.core.progress import Progress
from thaw_slump_mapper.engine import detect
from thaw_slump_mapper.engine.detect import DetectionRequest, run_detection
from thaw_slump_mapper.engine.raster_source import open_raster, processing_grid

from ..engine_helpers import chip_rgb, write_raster


def test_streamed_polygons_equal_a_second_pass_over_the_probability(chip_paths, tmp_path):
    # 4 x 4 real chips (256 px each) as one 1024 px 3 m raster: the model's own grid, so the
    # streamed path is taken; 1024 px with 512 px tiles every 384 px is three tile rows
    chips = [np.clip(np.nan_to_num(chip_rgb(p)[0]), 1, 255).astype(np.uint8) for p in chip_paths[:16]]
    rows = [np.concatenate(chips[i * 4:(i + 1) * 4], axis=2) for i in range(4)]
    mosaic = write_raster(tmp_path / "mosaic.tif", np.concatenate(rows, axis=1), Affine(3, 0, 0, 0, -3, 3072.0))
    result = run_detection(DetectionRequest(mosaic, tmp_path / "s.gpkg", threshold=0.3, min_area_m2=0))
    with open_raster(mosaic) as src:
        grid = processing_grid(src, 3.0)
    assert not grid.resampled
    second_pass = detect._vectorize(result.probability_path, tmp_path / "unused.tif", grid, 0.3, Progress())
    streamed = sorted(result.features, key=lambda f: f.geometry.bounds)
    expected = sorted(second_pass, key=lambda c: c.geometry.bounds)
    assert len(streamed) == len(expected) > 3
    spanning = 0
    for feature, component in zip(streamed, expected):
        assert feature.geometry.equals(component.geometry)
        assert feature.properties["score_mean"] == round(component.score_mean, 4)
        ymin, ymax = feature.geometry.bounds[1], feature.geometry.bounds[3]
        spanning += any(ymin < 3072.0 - 3 * r < ymax for r in (384, 768))
    assert spanning >= 1  # at least one polygon was joined across row blocks
    with rasterio.open(result.probability_path) as prob:
        assert prob.read(1).shape == (1024, 1024)
