"""Training-label export: masks equal the rasterised labels on each chip's grid, rejected
detections become negatives, the split never puts overlapping chips on both sides."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

from thaw_slump_mapper.analysis.label_export import LABELS_GEOJSON, ExportOptions, export_labels, uid_for
from thaw_slump_mapper.core.chip_format import MANIFEST_COLUMNS, read_manifest
from thaw_slump_mapper.core.errors import UserError
from thaw_slump_mapper.engine.detect import DETECTION_SCHEMA
from thaw_slump_mapper.engine.vector_io import PolygonFeature, read_polygons, write_polygons

REPO = Path(__file__).resolve().parents[2]
# One expert-corrected slump, and about 1.7% of its RGB pixels unimaged (0 in every band).
SHARED_CHIP = "8f47ab65-bb3"
UTM8 = "EPSG:32608"


def _shared_chip(shared_data: Path) -> Path:
    return next((shared_data / "arctic_rts_chips" / "chips").glob(SHARED_CHIP + "*.tif"))


def _check_chip_against_labels(folder: Path, record, positives, image_path: Path, same_grid: bool) -> None:
    """The mask is the rasterised positives on the chip's own grid, 255 exactly on nodata."""
    with rasterio.open(folder / record.mask) as m, rasterio.open(folder / record.image) as im:
        mask = m.read(1)
        assert m.transform == im.transform and m.crs == im.crs and mask.dtype == np.uint8
        expected = rasterize(
            [(mapping(g), 1) for g in positives], out_shape=mask.shape, transform=m.transform, fill=0, dtype="uint8"
        )
        data = im.read()
        nodata = ~np.all(np.isfinite(data), axis=0) | np.all(data == 0, axis=0)
        assert np.array_equal(mask == 255, nodata)
        assert np.array_equal(mask[~nodata], expected[~nodata])
        assert int(np.count_nonzero(mask == 1)) == record.slump_pixels
        if same_grid:
            # Chips sit on the image grid: the pixels are the image's own, not resampled.
            with rasterio.open(image_path) as src:
                window = rasterio.windows.from_bounds(*im.bounds, transform=src.transform)
                assert window.col_off == pytest.approx(round(window.col_off), abs=1e-6)
                assert window.row_off == pytest.approx(round(window.row_off), abs=1e-6)
                original = src.read([1, 2, 3], window=window.round_offsets().round_lengths())
                assert np.array_equal(original, data, equal_nan=True)


def test_export_on_shared_chip_masks_match_rasterised_labels(tmp_path, shared_data):
    image = _shared_chip(shared_data)
    labels_path = shared_data / "arctic_rts_chips" / "GroundTruth_Final.geojson"
    out = tmp_path / "chips"
    summary = export_labels(image, labels_path, out, ExportOptions(gsd_m=2.0, chip_size_px=64, buffer_m=300, creator_lab="Test Lab"))
    assert summary.n_positive_chips >= 1 and summary.gsd_m == 2.0
    with open(out / "manifest.csv") as fh:
        assert fh.readline().strip() == ",".join(MANIFEST_COLUMNS)
    records = read_manifest(out)
    assert len(records) == summary.n_chips
    with rasterio.open(image) as src:
        image_box = box(*src.bounds)
    positives = [f.geometry for f in read_polygons(labels_path).features if f.geometry.intersects(image_box)]
    assert positives
    for record in records:
        _check_chip_against_labels(out, record, positives, image, same_grid=True)
    assert sum(r.slump_pixels for r in records if "positive" in r.image) > 0
    masks = [rasterio.open(out / r.mask).read(1) for r in records]
    assert any((m == 255).any() for m in masks)  # this chip's unimaged corner is masked out

    arts = read_polygons(out / LABELS_GEOJSON)
    assert len(arts.features) == len(positives)
    props = arts.features[0].properties
    assert props["TrainClass"] == "Positive" and props["CreatorLab"] == "Test Lab"
    assert props["BaseMapResolution"] == "2" and props["BaseMapSource"] == image.name
    assert uuid.UUID(props["UID"]).version == 5
    assert props["UID"] == uid_for(positives[0])  # a pure function of the geometry

    # Resampled to 3 m, masks are still exactly the labels rasterised on the new grid.
    out3 = tmp_path / "chips3"
    summary3 = export_labels(image, labels_path, out3, ExportOptions(gsd_m=3.0, chip_size_px=48, buffer_m=60))
    for record in read_manifest(out3):
        with rasterio.open(out3 / record.image) as im:
            assert im.res == (3.0, 3.0)
        _check_chip_against_labels(out3, record, positives, image, same_grid=False)
    assert summary3.gsd_m == 3.0


def test_make_export_labels_and_default_gsd_from_checkpoint(tmp_path, shared_data, tiny_checkpoint):
    image = _shared_chip(shared_data)
    labels_path = shared_data / "arctic_rts_chips" / "GroundTruth_Final.geojson"
    out = tmp_path / "made"
    env = dict(os.environ, SHARED=str(shared_data.parent))
    proc = subprocess.run(
        ["make", "-s", "export-labels", f"IMAGE={image}", f"LABELS={labels_path}", f"OUTPUT={out}", "CHIP_SIZE=64"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_manifest(out) and (out / LABELS_GEOJSON).exists()
    # A second export into the same folder is refused rather than mixed in.
    with pytest.raises(UserError, match="already holds"):
        export_labels(image, labels_path, out, ExportOptions(gsd_m=2.0))
    from thaw_slump_mapper.core.checkpoint import load_checkpoint

    summary = export_labels(image, labels_path, tmp_path / "ck", ExportOptions(checkpoint_path=tiny_checkpoint, chip_size_px=64))
    assert summary.gsd_m == load_checkpoint(tiny_checkpoint).gsd_m


# ---------------------------------------------------------------- reviewed detection layer


def _synthetic_scene(tmp_path: Path) -> Path:
    """A 3-band 8-bit image at 3 m, 800 x 800 px (2.4 km), with a nodata strip on the left."""
    rng = np.random.default_rng(1)
    data = rng.integers(20, 200, size=(3, 800, 800), dtype=np.uint8)
    data[:, :, :40] = 0
    path = tmp_path / "scene.tif"
    profile = dict(driver="GTiff", width=800, height=800, count=3, dtype="uint8", crs=UTM8, transform=from_origin(500000, 7002400, 3.0, 3.0))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _review_layer(tmp_path: Path):
    x0, y0 = 500000, 7000000
    slumps = {
        1: (box(x0 + 300, y0 + 2000, x0 + 400, y0 + 2080), "confirmed"),
        2: (box(x0 + 2000, y0 + 300, x0 + 2090, y0 + 400), "edited"),
        3: (box(x0 + 2000, y0 + 2000, x0 + 2060, y0 + 2050), "rejected"),
        4: (box(x0 + 1200, y0 + 1200, x0 + 1260, y0 + 1260), "unreviewed"),
    }
    features = [
        PolygonFeature(g, {"id": i, "score_mean": 0.7, "review": state, "orig_score": 0.7, "orig_wkt": g.wkt})
        for i, (g, state) in slumps.items()
    ]
    path = tmp_path / "reviewed.gpkg"
    write_polygons(path, "thaw_slumps", features, fiona.crs.CRS.from_user_input(UTM8).to_wkt(), DETECTION_SCHEMA)
    return path, slumps


def test_reviewed_layer_rejected_become_negatives_and_split_is_spatial(tmp_path):
    image = _synthetic_scene(tmp_path)
    labels, slumps = _review_layer(tmp_path)
    out = tmp_path / "chips"
    summary = export_labels(
        image, labels, out, ExportOptions(gsd_m=3.0, chip_size_px=64, buffer_m=60, negatives_per_positive=1.0,
                                          unreviewed="ignore", val_fraction=0.3, block_size_m=500, seed=3),
    )
    assert summary.n_positive_chips == 2  # confirmed and edited; the unreviewed one is masked out
    assert summary.n_negative_chips == 1
    assert summary.n_background_chips == 2
    assert summary.n_train > 0 and summary.n_val > 0
    records = read_manifest(out)
    footprints = {}
    for r in records:
        with rasterio.open(out / r.mask) as m:
            mask = m.read(1)
            footprints[r.image] = (box(*m.bounds), r.split)
            if "negative" in r.image:
                inside = rasterize([(mapping(slumps[3][0]), 1)], out_shape=mask.shape, transform=m.transform)
                assert inside.any() and np.all(mask[inside == 1] == 0)  # the rejected outline is background
            if "background" in r.image:
                assert not (mask == 1).any()
                assert not box(*m.bounds).intersects(slumps[1][0].buffer(60))
            unreviewed = rasterize([(mapping(slumps[4][0]), 1)], out_shape=mask.shape, transform=m.transform)
            assert np.all(mask[unreviewed == 1] == 255)
    train = [b for b, s in footprints.values() if s == "train"]
    val = [b for b, s in footprints.values() if s == "val"]
    assert not any(t.intersects(v) for t in train for v in val)

    arts = {f.properties["TrainClass"] for f in read_polygons(out / LABELS_GEOJSON).features}
    assert arts == {"Positive", "Negative"}
    assert len(read_polygons(out / LABELS_GEOJSON).features) == 3  # the ignored one is not a label

    # Same seed, same chips and split.
    again = export_labels(
        image, labels, tmp_path / "again", ExportOptions(gsd_m=3.0, chip_size_px=64, buffer_m=60, unreviewed="ignore",
                                                         val_fraction=0.3, block_size_m=500, seed=3),
    )
    assert [(r.image, r.split) for r in read_manifest(tmp_path / "again")] == [(r.image, r.split) for r in records]
    assert again.n_val == summary.n_val


def test_train_class_field_and_bad_input(tmp_path, shared_data):
    image = _synthetic_scene(tmp_path)
    crs_wkt = fiona.crs.CRS.from_user_input(UTM8).to_wkt()
    arts_like = tmp_path / "arts.geojson"
    write_polygons(
        arts_like, "arts",
        [PolygonFeature(box(500300, 7002000, 500400, 7002080), {"TrainClass": "Positive"}),
         PolygonFeature(box(502000, 7000300, 502090, 7000400), {"TrainClass": "Negative"})],
        crs_wkt, {"TrainClass": "str"},
    )
    summary = export_labels(image, arts_like, tmp_path / "a", ExportOptions(gsd_m=3.0, chip_size_px=64, buffer_m=30, negatives_per_positive=0))
    assert (summary.n_positive_chips, summary.n_negative_chips, summary.n_positive_labels, summary.n_negative_labels) == (1, 1, 1, 1)

    far_away = tmp_path / "far.gpkg"
    write_polygons(far_away, "far", [PolygonFeature(box(0, 0, 10, 10), {})], crs_wkt, {})
    with pytest.raises(UserError, match="falls on"):
        export_labels(image, far_away, tmp_path / "b", ExportOptions(gsd_m=3.0))
    empty = tmp_path / "empty.gpkg"
    write_polygons(empty, "empty", [], crs_wkt, {})
    with pytest.raises(UserError, match="no polygons"):
        export_labels(image, empty, tmp_path / "c", ExportOptions(gsd_m=3.0))
    no_crs_labels = tmp_path / "nocrs.shp"
    write_polygons(no_crs_labels, "nocrs", [PolygonFeature(box(500300, 7002000, 500400, 7002080), {})], "", {})
    with pytest.raises(UserError, match="coordinate reference system"):
        export_labels(image, no_crs_labels, tmp_path / "d", ExportOptions(gsd_m=3.0))
    no_crs_image = tmp_path / "nocrs.tif"
    with rasterio.open(no_crs_image, "w", driver="GTiff", width=50, height=50, count=3, dtype="uint8") as dst:
        dst.write(np.ones((3, 50, 50), np.uint8))
    with pytest.raises(UserError, match="coordinate reference system"):
        export_labels(no_crs_image, arts_like, tmp_path / "e", ExportOptions(gsd_m=3.0))
