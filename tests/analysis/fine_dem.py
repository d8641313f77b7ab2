"""A 1 m 'lidar-like' DEM built from the real ASTER DEM with a known transform, and slump
outlines of lidar-survey size on it; shared by tests/analysis/test_solar_fine_dem.py and
tools/bench_morphometry.py (which times SAGA on it in the same run).

Transform: a 67 x 34 cell window (2 km x 1 km, 118 m of relief, a hillslope of the
Exploradores valley) of /work/shared/data/dem/aster_dem_30m.tif resampled to 1 m cells with
cubic convolution (rasterio/GDAL) and moved to the Beiluhe region of the paper (UTM 46N,
about 34.8 N; in the ASTER DEM's own place, 46.6 S, May-August is winter), plus fixed white
noise of 0.10 m standard deviation per cell, the vertical noise of airborne lidar, so that the surface is not made of smooth cubic patches."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np
import rasterio
import shapely
import shapely.affinity
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import reproject
from rasterio.windows import Window

from thaw_slump_mapper.engine.vector_io import read_polygons

ASTER_WINDOW = Window(152, 384, 67, 34)  # col, row, width, height of the 30 m DEM
FINE_CELL_M = 1.0
FINE_SHAPE = (1000, 2000)  # rows, cols
ROUGHNESS_M, SEED = 0.10, 11  # lidar-like vertical noise per cell
FINE_CRS, FINE_ORIGIN = "EPSG:32646", (490_000.0, 3_852_000.0)  # upper-left corner, near Beiluhe


def build_fine_dem(shared_data: Path, out: Path, shape: Tuple[int, int] = FINE_SHAPE, cell_m: float = FINE_CELL_M) -> Path:
    with rasterio.open(shared_data / "dem" / "aster_dem_30m.tif") as src:
        coarse = src.read(1, window=ASTER_WINDOW).astype(np.float32)
        coarse_transform = src.window_transform(ASTER_WINDOW)
        crs = src.crs
    resampled = from_origin(coarse_transform.c + 5.0, coarse_transform.f - 5.0, cell_m, cell_m)
    fine = np.zeros(shape, dtype=np.float32)
    reproject(coarse, fine, src_transform=coarse_transform, src_crs=crs, dst_transform=resampled, dst_crs=crs,
              resampling=Resampling.cubic)
    transform, crs = from_origin(*FINE_ORIGIN, cell_m, cell_m), rasterio.crs.CRS.from_string(FINE_CRS)
    fine += np.random.default_rng(SEED).normal(0.0, ROUGHNESS_M, size=shape).astype(np.float32)
    profile = dict(driver="GTiff", width=shape[1], height=shape[0], count=1, dtype="float32", crs=crs,
                   transform=transform, nodata=-9999.0, tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(fine, 1)
    return out


def fine_polygons(shared_data: Path, dem_path: Path, n: int = 40, seed: int = 5, margin_m: float = 150.0) -> List[shapely.Geometry]:
    """n real slump outlines (Banks Island) rescaled to 0.03-1.3 ha (log-uniform, the
    issue's lidar case) and placed at random on the DEM, margin_m from its edges."""
    layer = read_polygons(shared_data / "rts_inventories" / "Banks_Island_slumps.shp")
    shapes = sorted((f.geometry for f in layer.features), key=lambda g: -g.area)[:n]
    rng = np.random.default_rng(seed)
    with rasterio.open(dem_path) as dem:
        b = dem.bounds
    out = []
    for g in shapes:
        area = float(np.exp(rng.uniform(np.log(300.0), np.log(13_000.0))))
        factor = float(np.sqrt(area / g.area))
        g = shapely.affinity.scale(g, factor, factor, origin="centroid")
        c = g.centroid
        x, y = rng.uniform(b.left + margin_m, b.right - margin_m), rng.uniform(b.bottom + margin_m, b.top - margin_m)
        out.append(shapely.affinity.translate(g, x - c.x, y - c.y))
    return out
