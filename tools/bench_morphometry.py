"""Benchmark: morphometry of 10,000 polygons on a 10000 x 10000 DEM (30 m cells).

Prints the seconds and the peak resident memory of the shape + terrain run (the 60 s target),
then times solar radiation on the polygons of one DEM block and extrapolates its cost. The DEM is a
synthetic rolling surface written once to a temporary GeoTIFF (400 MB, removed afterwards)."""
from __future__ import annotations

import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.transform import from_origin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".venv" / "pkg"))
from thaw_slump_mapper.analysis.morphometry import morphometry_for_geometries  # noqa: E402

SIZE, CELL, N_POLYGONS = 10_000, 30.0, 10_000
ORIGIN = (500_000.0, 4_000_000.0 + SIZE * CELL)


def write_dem(path: Path) -> None:
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="float32", crs="EPSG:32645",
                   transform=from_origin(*ORIGIN, CELL, CELL), tiled=True, blockxsize=512, blockysize=512, nodata=-9999)
    x = np.arange(SIZE) * CELL
    rng = np.random.default_rng(1)
    with rasterio.open(path, "w", **profile) as dst:
        for row0 in range(0, SIZE, 512):
            y = (row0 + np.arange(min(512, SIZE - row0)))[:, None] * CELL
            z = 4600 + 80 * np.sin(x / 3000.0) * np.cos(y / 4100.0) + 25 * np.sin(x / 700.0 + y / 900.0)
            z = z + rng.normal(0, 0.5, z.shape)
            dst.write(z.astype("float32"), 1, window=rasterio.windows.Window(0, row0, SIZE, z.shape[0]))


def polygons() -> list:
    rng = np.random.default_rng(2)
    out = []
    for _ in range(N_POLYGONS):
        area = float(np.clip(rng.lognormal(np.log(2.0e4), 0.9), 3000, 350_000))  # 0.3-35 ha, like Beiluhe
        a = np.sqrt(area / np.pi) * rng.uniform(1.0, 2.0)
        b = area / (np.pi * a)
        cx = ORIGIN[0] + rng.uniform(1000, SIZE * CELL - 1000)
        cy = ORIGIN[1] - rng.uniform(1000, SIZE * CELL - 1000)
        e = shapely.affinity.scale(shapely.Point(0, 0).buffer(1.0, 16), a, b)
        e = shapely.affinity.rotate(e, rng.uniform(0, 180))
        out.append(shapely.affinity.translate(e, cx, cy))
    return out


def main() -> int:
    import shapely.affinity  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        dem = Path(tmp) / "dem.tif"
        t = time.perf_counter()
        write_dem(dem)
        geoms = polygons()
        print(f"set-up (DEM + polygons): {time.perf_counter() - t:.1f} s, "
              f"peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            records = morphometry_for_geometries(geoms, "EPSG:32645", dem, solar_radiation=False)
            elapsed = time.perf_counter() - t
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            filled = sum(r["slope_mean"] is not None for r in records)
            print(f"shape + terrain: {N_POLYGONS} polygons, {SIZE}x{SIZE} DEM: {elapsed:.1f} s, peak RSS {peak_mb:.0f} MB, "
                  f"{filled} with terrain values (target < 60 s)")
            # solar radiation on the polygons of one 512-cell block (~26), the unit the
            # module works in, so the per-block costs are shared as in a full run
            block_m = 512 * CELL
            sample = [g for g in geoms if g.centroid.x < ORIGIN[0] + block_m and g.centroid.y > ORIGIN[1] - block_m]
            t = time.perf_counter()
            morphometry_for_geometries(sample, "EPSG:32645", dem, solar_radiation=True)
            with_solar = time.perf_counter() - t
            t = time.perf_counter()
            morphometry_for_geometries(sample, "EPSG:32645", dem, solar_radiation=False)
            without = time.perf_counter() - t
            per_polygon = max(with_solar - without, 0.0) / len(sample)
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"solar radiation: {per_polygon * 1000:.0f} ms per polygon on {len(sample)} polygons of one block, 1 May - 31 Aug daily "
                  f"(about {per_polygon * N_POLYGONS:.0f} s extra for all {N_POLYGONS}); peak RSS {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
