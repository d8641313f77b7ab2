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
