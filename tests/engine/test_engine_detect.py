"""Detection end to end on real chips: exact areas, resampling, scaling, nodata, extents."""
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from thaw_slump_mapper.core.errors import Cancelled, UserError
from thaw_slump_mapper.core.progress import Progress
from thaw_slump_mapper.core.scaling import apply_scaling, compute_stretch, default_scaling, valid_pixels
from thaw_slump_mapper.engine.detect import DETECTION_SCHEMA, DetectionRequest, run_detection
from thaw_slump_mapper.engine.extent import Extent
from thaw_slump_mapper.engine.measures import true_area_perimeter
from thaw_slump_mapper.engine.vector_io import read_polygons
from thaw_slump_mapper.engine.vectorize import vectorize_components
from thaw_slump_mapper.tests.checkpoints import make_tiny_checkpoint

from ..engine_helpers import chip_rgb, write_raster


@pytest.fixture(scope="module")
def low_threshold_ckpt(tmp_path_factory) -> Path:
    """A tiny 2 m checkpoint; tests pass a threshold near its output so polygons appear."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("c") / "t.pt", gsd_m=2.0)


def _median_probability(path: Path) -> float:
    with rasterio.open(path) as src:
        v = src.read(1)
    return float(np.median(v[v != 255])) / 100.0


def test_polygon_area_equals_pixel_count_times_pixel_area(low_threshold_ckpt, chip_paths, tmp_path):
    chip = chip_paths[0]
    first = run_detection(DetectionRequest(chip, tmp_path / "a.gpkg", checkpoint_path=low_threshold_ckpt, bands=[1, 2, 3], min_area_m2=0))
    threshold = _median_probability(first.probability_path) + 0.005
    result = run_detection(DetectionRequest(chip, tmp_path / "b.gpkg", checkpoint_path=low_threshold_ckpt, bands=[1, 2, 3],
                                            threshold=threshold, min_area_m2=0))
    with rasterio.open(result.probability_path) as src:
        values = src.read(1)
        pixel_area = abs(src.transform.a * src.transform.e)
    selected = int(((values != 255) & (values >= round(threshold * 100))).sum())
    layer = read_polygons(result.output_path)
    assert 0 < len(layer.features) == result.n_slumps
    assert sum(f.geometry.area for f in layer.features) == pytest.approx(selected * pixel_area, abs=1e-6)
    assert sum(f.properties["area_m2"] for f in layer.features) == pytest.approx(selected * pixel_area, abs=0.01 * len(layer.features))
    assert set(layer.schema) == set(DETECTION_SCHEMA)
    for f in layer.features:
        assert 0 <= f.properties["score_mean"] <= f.properties["score_max"] <= 1
        assert (
            f.properties["review"] == "unreviewed" and f.properties["orig_wkt"].startswith("MULTIPOLYGON")
            or f.properties["orig_wkt"].startswith("POLYGON")
        )
        assert f.properties["source"] == chip.name
    assert layer.crs == CRS.from_epsg(3413)


def test_strip_vectoriser_keeps_holes_and_joins_strips():
    mask = np.zeros((60, 40), bool)
    mask[5:55, 5:35] = True
    mask[20:30, 15:25] = False  # a hole crossing strip borders
    mask[40:45, 0:3] = True     # a separate blob
    scores = np.where(mask, 0.8, 0.0).astype(np.float32)
    comps = vectorize_components(mask, scores, Affine(2, 0, 0, 0, -2, 120), strip_rows=7)
    assert len(comps) == 2
    big = max(comps, key=lambda c: c.pixel_count)
    assert big.pixel_count == 50 * 30 - 100
    assert big.geometry.area == pytest.approx(big.pixel_count * 4)
    assert len(big.geometry.interiors) == 1 and big.geometry.is_valid
    assert big.score_mean == pytest.approx(0.8)


def test_resampling_to_the_model_grid_returns_outputs_on_the_input_grid(tmp_path, chip_paths):
    ckpt3 = make_tiny_checkpoint(tmp_path / "c3.pt", gsd_m=3.0)
    result = run_detection(DetectionRequest(chip_paths[2], tmp_path / "r.gpkg", checkpoint_path=ckpt3, bands=[1, 2, 3], min_area_m2=0))
    assert any("resampling" in line for line in result.log)
    with rasterio.open(chip_paths[2]) as src, rasterio.open(result.probability_path) as prob:
        assert (prob.width, prob.height, prob.transform, prob.crs) == (src.width, src.height, src.transform, src.crs)
    # A 10 m raster (the chip averaged 5 x 5) also comes back on its own grid.
    rgb, transform, crs = chip_rgb(chip_paths[2])
    rgb = np.nan_to_num(rgb, neginf=0.0)[:, :250, :250].reshape(3, 50, 5, 50, 5).mean(axis=(2, 4)).astype(np.float32)
    ten = write_raster(tmp_path / "ten.tif", rgb, transform * Affine.scale(5), crs)
    result10 = run_detection(DetectionRequest(ten, tmp_path / "t.gpkg", checkpoint_path=ckpt3, min_area_m2=0))
    with rasterio.open(result10.probability_path) as prob:
        assert (prob.width, prob.height) == (50, 50)


def test_scaling_is_the_same_for_8_bit_16_bit_and_float(chip_paths):
    rgb, _, _ = chip_rgb(chip_paths[3])
    base = np.nan_to_num(rgb, neginf=0.0)
    scaling = default_scaling(["red", "green", "blue"])
    outputs = []
    for data in (base.astype(np.uint8), (base * 257).astype(np.uint16), base.astype(np.float32) / 255.0):
        valid = valid_pixels(data)
        outputs.append(apply_scaling(data, valid, compute_stretch(data, valid, scaling), scaling))
    assert np.allclose(outputs[0], outputs[1], atol=1e-4) and np.allclose(outputs[0], outputs[2], atol=1e-4)
    assert outputs[0].dtype == np.float32 and abs(float(outputs[0].mean())) < 2


def test_nodata_pixels_are_excluded_from_input_and_output(low_threshold_ckpt, chip_paths, tmp_path):
    rgb, transform, crs = chip_rgb(chip_paths[4])
    data = np.nan_to_num(rgb, neginf=0.0).astype(np.float32)
    data[:, :60, :] = np.nan          # NaN rows
    data[:, 100:120, :] = np.inf      # infinities
    data[:, :, 200:] = -9999          # declared nodata
    path = write_raster(tmp_path / "nd.tif", data, transform, crs, nodata=-9999)
    result = run_detection(DetectionRequest(path, tmp_path / "nd.gpkg", checkpoint_path=low_threshold_ckpt, threshold=0.01, min_area_m2=0))
    with rasterio.open(result.probability_path) as prob:
        v = prob.read(1)
    assert (v[:60] == 255).all() and (v[100:120] == 255).all() and (v[:, 200:] == 255).all()
    assert (v[60:100, :200] != 255).all()
    nodata_box = rasterio.transform.array_bounds(60, 256, transform)
    for f in read_polygons(result.output_path).features:
        # threshold 0.01 selects every valid pixel, so polygons must avoid the nodata rows
        assert f.geometry.bounds[3] <= nodata_box[3] + 1e-6


def test_polygon_extent_masks_outside_pixels(low_threshold_ckpt, chip_paths, tmp_path):
    with rasterio.open(chip_paths[5]) as src:
        b = src.bounds
    from shapely.geometry import Point

    circle = Point((b.left + b.right) / 2, (b.bottom + b.top) / 2).buffer(100)
    result = run_detection(DetectionRequest(chip_paths[5], tmp_path / "e.gpkg", checkpoint_path=low_threshold_ckpt, bands=[1, 2, 3],
                                            extent=Extent.from_polygon(circle), threshold=0.01, min_area_m2=0))
    total = sum(f.geometry.area for f in read_polygons(result.output_path).features)
    assert total == pytest.approx(circle.area, rel=0.05)
    with rasterio.open(result.probability_path) as prob:
        assert prob.width == prob.height == 100  # the circle's bounding box at 2 m


def test_geographic_raster_gets_true_square_metres(low_threshold_ckpt, chip_paths, tmp_path):
    rgb, _, _ = chip_rgb(chip_paths[6])
    data = np.nan_to_num(rgb, neginf=0.0).astype(np.float32)
    # ~2 m pixels at 70 N: 2 / (111320 cos 70) deg east, 2 / 110574 deg north
    transform = Affine(2 / (111320 * np.cos(np.radians(70))), 0, 20.0, 0, -2 / 110574, 70.0)
    path = write_raster(tmp_path / "geo.tif", data, transform, "EPSG:4326")
    result = run_detection(DetectionRequest(path, tmp_path / "g.gpkg", checkpoint_path=low_threshold_ckpt, threshold=0.01, min_area_m2=0))
    total = sum(f.properties["area_m2"] for f in result.features)
    with rasterio.open(result.probability_path) as prob:
        selected = (prob.read(1) != 255)
    # Independent truth: exact WGS84 area of each lat/lon cell (authalic-latitude formula).
    a, e2 = 6378137.0, 6.69437999014e-3
    e = np.sqrt(e2)

    def q(lat_deg):
        s = np.sin(np.radians(lat_deg))
        return s / (1 - e2 * s * s) + np.log((1 + e * s) / (1 - e * s)) / (2 * e)

    row_tops = 70.0 - np.arange(256) * (2 / 110574)
    cell = a * a * (1 - e2) / 2 * np.radians(transform.a) * (q(row_tops) - q(row_tops - 2 / 110574))
    expected = float((selected.sum(axis=1) * cell).sum())
    assert total == pytest.approx(expected, rel=1e-4)
    area, _ = true_area_perimeter(result.features[0].geometry, CRS.from_epsg(4326))
    assert area > 1000  # square metres, not square degrees


def test_cancel_leaves_no_complete_output(low_threshold_ckpt, chip_paths, tmp_path):
    calls = []
    progress = Progress(lambda f, m: calls.append(f), lambda: len(calls) > 2)
    with pytest.raises(Cancelled):
        run_detection(DetectionRequest(chip_paths[0], tmp_path / "x.gpkg", checkpoint_path=low_threshold_ckpt, bands=[1, 2, 3]), progress)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("gdal_python_bindings")  # a layer added to an existing GeoPackage
def test_existing_layer_is_never_overwritten_silently(low_threshold_ckpt, chip_paths, tmp_path):
    out = tmp_path / "keep.gpkg"
    run_detection(DetectionRequest(chip_paths[0], out, checkpoint_path=low_threshold_ckpt, bands=[1, 2, 3], threshold=0.01, min_area_m2=0))
    before = out.read_bytes()
    with pytest.raises(UserError, match="already holds a layer"):
        run_detection(DetectionRequest(chip_paths[0], out, checkpoint_path=low_threshold_ckpt, bands=[1, 2, 3]))
    assert out.read_bytes() == before
    # another layer name in the same GeoPackage is fine, and keeps the first layer
    run_detection(DetectionRequest(chip_paths[0], out, checkpoint_path=low_threshold_ckpt, bands=[1, 2, 3], layer_name="second",
                                   probability_path=tmp_path / "p2.tif"))
    import fiona

    assert set(fiona.listlayers(out)) == {"thaw_slumps", "second"}
