"""Solar radiation and TPI on a 1-2 m DEM (lidar/ArcticDEM resolution): the horizon method
against SAGA GIS 8.5 (ta_lighting 2) on the whole grid, for agreement AND for time, in one run.

The DEM is the real ASTER DEM resampled to 2 m with a known transform (tests/analysis/fine_dem.py).
SAGA's slim shadow casts a ray per cell per moment, which on fine grids under a low Sun runs
hundreds of cells, so SAGA needs 10-60 s (idle-loaded) per day even on this 200 x 300 grid: one day
(15 June, in the paper's window, half-hour steps, lumped 70 %) keeps the test short."""
from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest

from thaw_slump_mapper.analysis import terrain
from thaw_slump_mapper.analysis.morphometry import morphometry_for_geometries
from thaw_slump_mapper.analysis.solar_radiation import SolarSettings

from ..conftest import missing
from ..morphometry_helpers import polygon_means, read_grid, run_saga, saga_available
from .fine_dem import build_fine_dem, fine_polygons

DAY = dt.date(2019, 6, 15)
SHAPE, CELL_M = (200, 300), 2.0


@pytest.fixture(scope="module")
def fine_case(shared_data, tmp_path_factory):
    if not saga_available():
        missing("saga_cmd (SAGA GIS 8.5, `make setup` installs it) is missing")
    work = tmp_path_factory.mktemp("fine_solar")
    dem = build_fine_dem(shared_data, work / "dem.tif", SHAPE, CELL_M)
    geoms = fine_polygons(shared_data, dem, margin_m=90.0)
    latitude = 34.8057  # the DEM's centre (tests/analysis/fine_dem.py puts it near Beiluhe)
    started = time.perf_counter()
    run_saga("ta_lighting", "2", {
        "GRD_DEM": dem, "GRD_TOTAL": "total.sdat", "LATITUDE": latitude, "PERIOD": 1,
        "DAY": f"{DAY.isoformat()}T00:00:00", "HOUR_STEP": 0.5, "METHOD": 2, "LUMPED": 70, "SHADOW": 0,
        "LOCALSVF": 1, "UNITS": 0,
    }, work)
    saga_s = time.perf_counter() - started
    saga = np.array(polygon_means(read_grid(work / "total.sdat"), dem, geoms))
    settings = SolarSettings(first_day=DAY, last_day=DAY, latitude_deg=latitude)
    started = time.perf_counter()
    with_solar = morphometry_for_geometries(geoms, "EPSG:32646", dem, solar_settings=settings)
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    morphometry_for_geometries(geoms, "EPSG:32646", dem, solar_radiation=False)
    terrain_s = time.perf_counter() - started
    ours = np.array([r["pisr_mean"] for r in with_solar])
    return ours, saga, ours_s - terrain_s, saga_s, dem


def test_horizon_method_agrees_with_saga_within_1_percent_on_a_2m_dem(fine_case):
    ours, saga, _, _, _ = fine_case
    assert ours.size == 40 and np.isfinite(ours).all() and np.isfinite(saga).all()
    relative = (ours - saga) / saga
    print(f"fine DEM pisr: max |rel diff| {np.abs(relative).max():.5f}, mean signed {relative.mean():+.5f}")
    assert np.abs(relative).max() < 0.01  # measured: max 3e-5 (5.5e-4 on a 300 x 400 grid)


def test_per_polygon_solar_takes_no_longer_than_saga_on_the_whole_grid(fine_case):
    _, _, ours_s, saga_s, _ = fine_case
    print(f"solar for 40 polygons {ours_s:.1f} s, SAGA whole grid {saga_s:.1f} s, ratio {ours_s / saga_s:.3f}")
    assert ours_s <= saga_s  # measured under load: 4.4 s against 79 s (ratio 0.056)


def test_fft_disc_sums_equal_the_row_sums_on_the_fine_dem(fine_case):
    *_, dem = fine_case
    z = read_grid(dem)[:260, :300]
    z[40:60, 100:130] = np.nan  # a nodata patch: counts must stay exact
    widths = terrain.disc_half_widths(terrain.TPI_RADIUS_M, CELL_M)
    valid = ~np.isnan(z)
    total_fft, count_fft = terrain._disc_sums_fft(z, valid, widths)
    total_rows, count_rows = terrain._disc_sums_rows(z, valid, widths)
    assert np.array_equal(count_fft, count_rows)
    assert np.abs(total_fft - total_rows).max() < 1e-6 * np.abs(total_rows).max()


def test_horizons_give_saga_shadows_of_a_wall_including_the_window_edge():
    # the wall of test_solar_vs_saga: a 100 m wall on a flat plain, Sun at 30 deg from the
    # north and from the south-west; the horizon test must shade exactly the cells the exact
    # replay shades, and cells with no source on their line (the window's edge) stay lit
    import math

    from thaw_slump_mapper.analysis import solar_horizon
    from thaw_slump_mapper.analysis.solar_radiation import saga_shadow

    z = np.zeros((60, 20))
    z[10, :] = 100.0
    azimuths = np.radians([0.0, 225.0])
    horizons = solar_horizon.box_horizons(z.astype(np.float32), (0, 0, 60, 20), azimuths, np.full(2, 0.1), 10.0, 100.0)
    rows, cols = np.nonzero(np.ones_like(z, dtype=bool))
    for horizon, azimuth in zip(horizons, azimuths):
        replayed = saga_shadow(z, rows, cols, math.radians(30.0), float(azimuth), 10.0).reshape(z.shape)
        assert np.array_equal(horizon >= math.tan(math.radians(30.0)), replayed)
        assert replayed.any() and np.isfinite(horizon).all()
