"""Shared fixtures' building blocks for the morphometry tests: a crop of the real ASTER DEM,
real slump outlines moved onto it, and SAGA GIS 8.5 (saga_cmd) as the reference."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import numpy as np
import rasterio
import shapely
import shapely.affinity
from rasterio.windows import Window

from thaw_slump_mapper.analysis.morphometry import polygon_cells
from thaw_slump_mapper.engine.vector_io import read_polygons

# A 240 x 240 cell (7.2 km) crop of the Exploradores DEM: steep, with a few nodata cells,
# small enough that SAGA's solar tool runs over the whole summer in ~10 s.
CROP = Window(120, 150, 240, 240)
N_POLYGONS = 40
SOLAR_DAYS = ("2019-05-01T00:00:00", "2019-08-31T00:00:00")  # ISO datetimes: saga_cmd 8.5 ignores plain dates
N_SOLAR_DAYS = 123


def crop_dem(shared_data: Path, out: Path) -> Path:
    with rasterio.open(shared_data / "dem" / "aster_dem_30m.tif") as src:
        profile = src.profile
        profile.update(width=CROP.width, height=CROP.height, transform=src.window_transform(CROP))
        data = src.read(1, window=CROP)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data, 1)
    return out


def slump_shapes_on_dem(shared_data: Path, dem_path: Path, n: int = N_POLYGONS, seed: int = 7) -> List[shapely.Geometry]:
    """Real slump outlines (Banks Island, the largest ones) moved to random places on the DEM,
    scaled x2 so that each covers tens of 30 m cells."""
    layer = read_polygons(shared_data / "rts_inventories" / "Banks_Island_slumps.shp")
    shapes = sorted((f.geometry for f in layer.features), key=lambda g: -g.area)[:n]
    rng = np.random.default_rng(seed)
    with rasterio.open(dem_path) as dem:
        b = dem.bounds
    out = []
    for g in shapes:
        g = shapely.affinity.scale(g, 2.0, 2.0, origin="centroid")
        c = g.centroid
        x = rng.uniform(b.left + 900, b.right - 900)
        y = rng.uniform(b.bottom + 900, b.top - 900)
        out.append(shapely.affinity.translate(g, x - c.x, y - c.y))
    return out


def saga_available() -> bool:
    return shutil.which("saga_cmd") is not None


def run_saga(library: str, tool: str, args: Dict[str, str], cwd: Path) -> None:
    cmd = ["saga_cmd", "-f=q", library, tool]
    for k, v in args.items():
        cmd += [f"-{k}", str(v)]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"saga_cmd {library} {tool} failed: {done.stdout[-500:]} {done.stderr[-500:]}")


def read_grid(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        a = src.read(1, masked=True)
    return np.ma.filled(a.astype(np.float64), np.nan)


def polygon_means(grid: np.ndarray, dem_path: Path, geoms, circular: bool = False) -> List[float]:
    """Per-polygon means of a SAGA grid over the same cells the plugin uses."""
    with rasterio.open(dem_path) as dem:
        transform, shape = dem.transform, (dem.height, dem.width)
    out = []
    for g in geoms:
        values = grid[polygon_cells(g, transform, shape)]
        values = values[~np.isnan(values)]
        if values.size == 0:
            out.append(float("nan"))
        elif circular:
            a = np.radians(values)
            out.append(float(np.degrees(np.arctan2(np.sin(a).mean(), np.cos(a).mean())) % 360))
        else:
            out.append(float(values.mean()))
    return out
