"""Shortcuts in detection's CPU work that a GPU run exposed (tools/profile_detect.py), each
checked against the long way on real data: they must give the same result, or, for the
stretch sample of large rasters, limits within a few grey levels."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

from thaw_slump_mapper.core.checkpoint import bundled_checkpoint_path, load_checkpoint
from thaw_slump_mapper.core.scaling import apply_scaling, compute_stretch, valid_pixels
from thaw_slump_mapper.engine import raster_source
from thaw_slump_mapper.engine.backends import CUDA_MAX_BATCH, cuda_batch_size
from thaw_slump_mapper.engine.detect import speck_pixels
from thaw_slump_mapper.engine.inference import _scaled_batch
from thaw_slump_mapper.engine.raster_source import RasterRowSource, open_raster, processing_grid
from thaw_slump_mapper.engine.tiling import tile_batch
from thaw_slump_mapper.engine.vectorize import StripVectorizer

from ..engine_helpers import chip_rgb


@pytest.fixture(scope="module")
def mosaic(chip_paths, tmp_path_factory):
    """4 x 4 real chips as one 1024 px, 3 m, 8-bit raster, tiled in 256 px blocks."""
    chips = [np.clip(np.nan_to_num(chip_rgb(p)[0]), 1, 255).astype(np.uint8) for p in chip_paths[:16]]
    rows = [np.concatenate(chips[i * 4:(i + 1) * 4], axis=2) for i in range(4)]
    data = np.concatenate(rows, axis=1)
    path = tmp_path_factory.mktemp("shortcuts") / "mosaic.tif"
    profile = {"driver": "GTiff", "count": 3, "height": 1024, "width": 1024, "dtype": "uint8", "crs": "EPSG:3413",
               "transform": Affine(3, 0, 0, 0, -3, 3072.0), "tiled": True, "blockxsize": 256, "blockysize": 256}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def test_scaling_a_batch_span_once_equals_scaling_tile_by_tile(mosaic):
    ckpt = load_checkpoint(bundled_checkpoint_path())
    with open_raster(mosaic) as src:
        data = src.read([1, 2, 3], window=((640, 1024), (0, 1024)))  # a short bottom tile row
    valid = valid_pixels(data)
    valid[:, 300:340] = False  # nodata inside the span
    stretch = compute_stretch(data, valid, ckpt.scaling)
    tile, cols = 512, [0, 384, 768]  # the last tile runs past the raster's edge
    got = _scaled_batch(data, valid, cols, tile, stretch, ckpt.scaling)
    for i, c in enumerate(cols):
        part, part_valid = data[:, :, c:c + tile], valid[:, c:c + tile]
        padded = np.zeros((3, tile, tile), data.dtype)
        padded_valid = np.zeros((tile, tile), bool)
        padded[:, :part.shape[1], :part.shape[2]] = part
        padded_valid[:part.shape[1], :part.shape[2]] = part_valid
        np.testing.assert_array_equal(got[i], apply_scaling(padded, padded_valid, stretch, ckpt.scaling))


def test_block_sample_gives_the_decimated_reads_limits(mosaic, monkeypatch):
    ckpt = load_checkpoint(bundled_checkpoint_path())
    with open_raster(mosaic) as src:
        source = RasterRowSource(src, [1, 2, 3], processing_grid(src, 3.0))
        decimated = compute_stretch(*source.sample_for_stretch(), ckpt.scaling)
        monkeypatch.setattr(raster_source, "BLOCK_SAMPLE_ABOVE_PX", 0)
        monkeypatch.setattr(raster_source, "STATS_SAMPLE_BLOCKS", 16)  # every block, each thinned to 4096 px
        data, valid = source.sample_for_stretch()
    assert data.shape == (3, 1, 16 * 4096)
    blocks = compute_stretch(data, valid, ckpt.scaling)
    print(f"decimated {decimated}, 16 blocks {blocks}")
    np.testing.assert_allclose(blocks.low, decimated.low, atol=3)
    np.testing.assert_allclose(blocks.high, decimated.high, atol=3)


def test_dropping_specks_early_keeps_exactly_the_polygons_that_pass_the_minimum_area():
    rng = np.random.default_rng(3)
    mask = rng.random((300, 400)) > 0.93  # specks everywhere
    mask[20:90, 30:120] = True  # a slump wholly inside the first strip
    mask[95:160, 200:260] = True  # one that spans the strips at rows 100 and 200 ...
    mask[150:230, 240:250] = True  # ... joined to a tail
    mask[250:262, 10:22] = True  # 144 px: below the minimum, but more than one speck
    scores = rng.random(mask.shape).astype(np.float32)
    transform = Affine(3, 0, 500000, 0, -3, 7600000)
    min_area = 150 * 9.0

    def components(specks: float):
        vec = StripVectorizer(transform, 400, keep=lambda c: c.geometry.area >= min_area, speck_pixels=specks)
        for r0 in range(0, 300, 100):
            vec.add_strip(r0, mask[r0:r0 + 100], scores[r0:r0 + 100])
        return sorted(vec.finish(), key=lambda c: c.geometry.bounds)

    from rasterio.crs import CRS

    limit = speck_pixels(CRS.from_epsg(32606), transform, min_area)
    assert 149.99 < limit < 150
    assert speck_pixels(CRS.from_epsg(4326), transform, min_area) == 0.0  # degrees: area is not pixels x cell
    slow, fast = components(0.0), components(limit)
    assert len(slow) == len(fast) >= 2
    for a, b in zip(slow, fast):
        assert shapely.equals(a.geometry, b.geometry)
        assert (a.pixel_count, a.score_sum, a.score_max) == (b.pixel_count, b.score_sum, b.score_max)


def test_polygons_from_component_boxes_equal_those_of_the_whole_strip(monkeypatch):
    """Polygonising each component in its bounding box gives the same bytes as one call over
    the strip, also where the origin is not a whole number of metres (same roundings)."""
    from thaw_slump_mapper.engine import vectorize

    rng = np.random.default_rng(5)
    mask = np.zeros((120, 500), bool)
    for _ in range(25):
        r, c = rng.integers(0, 110), rng.integers(0, 480)
        mask[r:r + rng.integers(3, 12), c:c + rng.integers(3, 25)] = True
    mask[40:60, 100:140] = True
    mask[48:52, 110:130] = False  # a hole
    transform = Affine(2.9999, 0, 412345.678, 0, -3.0001, 7612345.321)

    def polygons(pixels_per_call: int):
        monkeypatch.setattr(vectorize, "PIXELS_PER_SHAPES_CALL", pixels_per_call)
        vec = StripVectorizer(transform, 500)
        vec.add_strip(0, mask, mask.astype(np.float32))
        return sorted(shapely.to_wkb(c.geometry) for c in vec.finish())

    boxes, whole = polygons(1), polygons(10**9)
    assert len(boxes) > 10 and any(shapely.from_wkb(g).interiors for g in boxes if g)
    assert boxes == whole


def test_a_strip_of_specks_only_gives_nothing():
    # found on the GPU machine, when specks were removed before the per-label statistics:
    # ndimage.maximum refused the empty selection left over
    mask = np.zeros((50, 60), bool)
    mask[10:12, 10:12] = mask[30, 40] = True
    vec = StripVectorizer(Affine(3, 0, 0, 0, -3, 150), 60, keep=lambda c: c.geometry.area >= 900, speck_pixels=100)
    vec.add_strip(0, mask, mask.astype(np.float32))
    assert vec.finish() == []


def test_gpu_batch_follows_free_memory():
    assert cuda_batch_size(140 * 2**30, 512) == CUDA_MAX_BATCH
    assert cuda_batch_size(2**30, 512) == 6  # half of 1 GiB at 80 MiB a tile
    assert cuda_batch_size(2**30, 1024) == 1
    assert cuda_batch_size(0, 512) == 1


def test_cpu_batch_holds_at_most_a_megapixel_and_four_tiles():
    assert [tile_batch(t, 4) for t in (64, 256, 512, 768, 1024, 2048)] == [4, 4, 4, 2, 1, 1]


def test_a_requested_tile_size_is_the_one_detection_runs(mosaic, tmp_path):
    from thaw_slump_mapper.engine.detect import DetectionRequest, run_detection

    runs = {}
    for tile in (None, 768):
        result = run_detection(DetectionRequest(mosaic, tmp_path / f"tile_{tile}.gpkg", precision="fp32", tile_size=tile))
        runs[tile] = result
    assert "tile 512 px, overlap 128 px, 4 tiles a batch" in " ".join(runs[None].log)
    assert "tile 768 px, overlap 128 px, 2 tiles a batch" in " ".join(runs[768].log)
    with rasterio.open(runs[None].probability_path) as a, rasterio.open(runs[768].probability_path) as b:
        # the same network over the same pixels with other tile borders: close, not equal
        assert a.shape == b.shape and not np.array_equal(a.read(1), b.read(1))


@pytest.mark.parametrize("tile", [100, 300, 8192, True, 512.0])
def test_a_tile_size_detection_cannot_run_is_refused_in_one_line(mosaic, tmp_path, tile):
    from thaw_slump_mapper.core.errors import UserError
    from thaw_slump_mapper.engine.detect import DetectionRequest, run_detection

    with pytest.raises(UserError, match="tile size must be a multiple of 32 px from 256 to 4096"):
        run_detection(DetectionRequest(mosaic, tmp_path / "refused.gpkg", tile_size=tile))
    assert not (tmp_path / "refused.gpkg").exists()
