"""The Arctic chip builder: masks are the rasterised expert GroundTruth, never band 4."""
from __future__ import annotations

import fiona
import numpy as np
import pytest
import rasterio
import shapely
from shapely.geometry import box, shape

from thaw_slump_mapper.core.chip_format import MANIFEST_COLUMNS, MASK_IGNORE, read_manifest
from thaw_slump_mapper.core.errors import UserError
from thaw_slump_mapper.model.arctic_chips_builder import build_arctic_chips


@pytest.fixture(scope="module")
def built(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("arctic") / "chips"
    records = build_arctic_chips(shared_data / "arctic_rts_chips", out, val_every=4)
    return out, records


def test_masks_match_ground_truth_at_pixel_centres(built, shared_data):
    out, records = built
    source = shared_data / "arctic_rts_chips"
    with fiona.open(source / "GroundTruth_Final.geojson") as src:
        truth = [shape(f["geometry"]) for f in src if f["properties"]["TrainClass"] == "Positive"]
    assert len(records) == 16 and read_manifest(out) == records  # 16 chips since 2026-11-28
    assert open(out / "manifest.csv").readline().strip() == ",".join(MANIFEST_COLUMNS)
    assert [r.split for r in records].count("val") == 4  # every 4th of 16 chips
    differs_from_band4 = 0
    for record in records:
        with rasterio.open(source / "chips" / record.source) as src:
            raw = src.read()
            t = src.transform
            footprint = box(*src.bounds)
        with rasterio.open(out / record.mask) as m:
            mask = m.read(1)
            assert m.transform == t and m.crs is not None
        # Independent truth: is each pixel centre inside an expert polygon?
        rows, cols = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]]
        xs, ys = t * (cols + 0.5, rows + 0.5)
        inside = np.zeros(mask.shape, bool)
        for poly in truth:
            if poly.intersects(footprint):
                inside |= shapely.contains_xy(poly, xs, ys)
        rgb = raw[:3]
        nodata = ~np.all(np.isfinite(rgb), axis=0) | np.all(rgb == 0, axis=0)
        assert np.array_equal(mask == MASK_IGNORE, nodata)
        scored = ~nodata
        # rasterio burns pixel centres too; allow a handful of boundary ties
        assert np.count_nonzero((mask[scored] == 1) != inside[scored]) <= 3
        assert record.slump_pixels == int((mask == 1).sum()) and record.gsd == 2.0
        band4 = raw[3] > 0.5
        differs_from_band4 += int(np.count_nonzero(band4[scored] != (mask[scored] == 1)) > 50)
        with rasterio.open(out / record.image) as img:
            assert img.count == 3 and np.all(np.isfinite(img.read()))
    assert differs_from_band4 >= 3  # the uncorrected outlines are not what we wrote


def test_builder_refuses_a_folder_without_chips(tmp_path):
    with pytest.raises(UserError, match="GroundTruth_Final.geojson"):
        build_arctic_chips(tmp_path, tmp_path / "out")
