"""Benchmark: morphometry of 10,000 polygons on a 10000 x 10000 DEM (30 m cells).

Prints the seconds and the peak resident memory of the shape + terrain run (the 60 s target),
then times solar radiation on the polygons of one DEM block and extrapolates its cost. The DEM is a
synthetic rolling surface written once to a temporary GeoTIFF (400 MB, removed afterwards).

Then the fine-DEM case (issue 11): a 2 m DEM built from the real ASTER DEM (tests/analysis/fine_dem.py),
40 slump outlines of 0.03-1.3 ha; per-polygon solar radiation against `saga_cmd ta_lighting 2`
on the whole grid in the same run, same day and settings, and the ratio of the two times.
SAGA runs one day (15 June) because its per-moment rays make the paper's 123 days take hours
on such a grid; the plugin's time for all 123 days is printed too."""
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

sys.path.append(str(Path(__file__).resolve().parents[1] / ".venv" / "pkg"))  # after PYTHONPATH: a worktree may point it at itself
from thaw_slump_mapper.analysis.morphometry import morphometry_for_geometries  # noqa: E402

SIZE, CELL, N_POLYGONS = 10_000, 30.0, 10_000
FINE_CRS = "EPSG:32646"
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


FINE_SHAPE, FINE_CELL_M, SAGA_DAY = (500, 1000), 2.0, "2019-06-15"


def fine_dem_solar_ratio(tmp: Path) -> float:
    """Seconds of per-polygon solar radiation over seconds of SAGA's whole-grid run."""
    import datetime as dt
    from dataclasses import replace

    from thaw_slump_mapper.analysis.solar_radiation import SolarSettings
    from thaw_slump_mapper.tests.analysis.fine_dem import build_fine_dem, fine_polygons
    from thaw_slump_mapper.tests.morphometry_helpers import polygon_means, read_grid, run_saga

    shared = Path(__import__("os").environ.get("SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data"
    dem = build_fine_dem(shared, tmp / "fine_dem.tif", FINE_SHAPE, FINE_CELL_M)
    geoms = fine_polygons(shared, dem, margin_m=150.0)
    latitude = 34.8
    day = dt.date.fromisoformat(SAGA_DAY)
    t = time.perf_counter()
    run_saga("ta_lighting", "2", {"GRD_DEM": dem, "GRD_TOTAL": "total.sdat", "LATITUDE": latitude, "PERIOD": 1,
                                  "DAY": f"{SAGA_DAY}T00:00:00", "HOUR_STEP": 0.5, "METHOD": 2, "LUMPED": 70,
                                  "SHADOW": 0, "LOCALSVF": 1, "UNITS": 0}, tmp)
    saga_s = time.perf_counter() - t
    saga = np.array(polygon_means(read_grid(tmp / "total.sdat"), dem, geoms))
    settings = SolarSettings(first_day=day, last_day=day, latitude_deg=latitude)
    t = time.perf_counter()
    records = morphometry_for_geometries(geoms, FINE_CRS, dem, solar_settings=settings)
    with_solar = time.perf_counter() - t
    t = time.perf_counter()
    morphometry_for_geometries(geoms, FINE_CRS, dem, solar_radiation=False)
    terrain_s = time.perf_counter() - t
    ours = np.array([r["pisr_mean"] for r in records])
    solar_s = max(with_solar - terrain_s, 1e-3)
    t = time.perf_counter()
    morphometry_for_geometries(geoms, FINE_CRS, dem, solar_settings=replace(settings, first_day=dt.date(2019, 5, 1),
                                                                              last_day=dt.date(2019, 8, 31)))
    season_s = time.perf_counter() - t - terrain_s
    ratio = solar_s / saga_s
    print(f"fine DEM {FINE_SHAPE[0]}x{FINE_SHAPE[1]} cells of {FINE_CELL_M:g} m, {len(geoms)} polygons "
          f"({sum(g.area for g in geoms) / 1e4:.1f} ha): shape+terrain (TPI 100 m) {terrain_s:.1f} s; solar {SAGA_DAY} "
          f"{solar_s:.1f} s, saga_cmd ta_lighting 2 whole grid {saga_s:.1f} s, ratio {ratio:.3f} (target <= 1.0); "
          f"max |ours - SAGA| / SAGA {np.nanmax(np.abs(ours - saga) / saga):.5f}; solar for 1 May-31 Aug daily {season_s:.1f} s")
    return ratio


def main() -> int:
    import shapely.affinity  # noqa: F401

    if "--fine-only" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fine_dem_solar_ratio(Path(tmp))
        return 0
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
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fine_dem_solar_ratio(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
