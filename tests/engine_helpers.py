"""Rasters with known truth for engine tests, derived from the real chips."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import rasterio
from affine import Affine


def write_raster(path: Path, data: np.ndarray, transform: Affine, crs: Optional[str] = "EPSG:3413", nodata=None) -> Path:
    profile = {"driver": "GTiff", "count": data.shape[0], "height": data.shape[1], "width": data.shape[2], "dtype": data.dtype,
               "transform": transform, "nodata": nodata}
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def chip_rgb(chip: Path) -> tuple:
    with rasterio.open(chip) as src:
        return src.read([1, 2, 3]), src.transform, src.crs.to_string()


def probability_agreement(reference: list, other: list) -> tuple:
    """(|p_other - p_reference| over the pixels valid in both, share of them whose 0.5
    decision flips) for lists of stored probability rasters (percent, 255 = no data)."""
    diffs, flips, n = [], 0, 0
    for a, b in zip(reference, other):
        valid = (a != 255) & (b != 255)
        pa, pb = a[valid] / 100.0, b[valid] / 100.0
        diffs.append(np.abs(pa - pb))
        flips += int(np.count_nonzero((pa >= 0.5) != (pb >= 0.5)))
        n += pa.size
    return np.concatenate(diffs), flips / n


def detect_on_chips(chips: list, work: Path, name: str, **options) -> tuple:
    """Detection with the bundled model on each chip (bands 1-3): the stored probability
    rasters, every polygon, and the results, for comparing two settings on the same chips."""
    from thaw_slump_mapper.engine.detect import DetectionRequest, run_detection

    probabilities, polygons, results = [], [], []
    for i, chip in enumerate(chips):
        result = run_detection(DetectionRequest(chip, work / f"{name}_{i}.gpkg", bands=[1, 2, 3], **options))
        with rasterio.open(result.probability_path) as src:
            probabilities.append(src.read(1))
        polygons += [f.geometry for f in result.features]
        results.append(result)
    return probabilities, polygons, results
