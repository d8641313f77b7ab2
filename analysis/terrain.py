"""The DEM on a local metric grid, and the terrain derivatives the paper took from SAGA GIS.

Grid. A DEM whose CRS is projected in metres (or feet etc., scaled) is used on its own grid,
untouched: resampling would only smooth it. A DEM in a geographic CRS (SRTM, ASTER GDEM in
EPSG:4326) is warped on the fly (a GDAL WarpedVRT, read window by window, so memory stays
bounded) onto square cells in the UTM zone of its centre. The cell size is the DEM's native
ground spacing there (geometric mean of the x and y spacing), and the resampling is bilinear:
elevation is a continuous surface, nearest neighbour would leave terraces that bias slope,
and cubic kernels overshoot at breaks of slope.

Slope and aspect. The 3x3 method of Zevenbergen & Thorne (1987), SAGA's default in
"Slope, Aspect, Curvature" (ta_morphometry 0, METHOD 6) and the gradient SAGA's solar tool
uses: G = (z_E - z_W) / 2L, H = (z_N - z_S) / 2L, slope = atan(sqrt(G^2 + H^2)), aspect
clockwise from north, 0 = north-facing. As in SAGA, a neighbour outside the grid or on
nodata is replaced by mirroring the opposite one (z - (z_opp - z)); with both missing the
difference is 0.

TPI. Guisan et al. (1999) as SAGA's "Topographic Position Index" (ta_morphometry 18): the
elevation minus the unweighted mean of all valid cells whose centres lie within the radius
(the cell itself included), radius 100 m as in the paper. Standardised (SAGA STANDARD=1)
divides the TPI minus its mean by its population standard deviation, both taken over the
whole DEM, as SAGA does over the grid it is given (morphometry sums them block by block in
its single pass over the DEM).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Tuple

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..core.errors import UserError
from ..engine.measures import metres_per_unit
from ..engine.raster_source import open_raster

TPI_RADIUS_M = 100.0


@dataclass
class MetricDem:
    """A DEM readable window by window on square cells measured in metres."""

    dataset: "rasterio.io.DatasetReader | WarpedVRT"
    crs: CRS
    transform: Affine
    width: int
    height: int
    cellsize_m: float
    warped: bool
    description: str

    def read(self, row0: int, col0: int, nrows: int, ncols: int) -> np.ndarray:
        """Elevations (float64, NaN for nodata and outside the DEM) of a window that may
        reach beyond the DEM."""
        out = np.full((nrows, ncols), np.nan, dtype=np.float64)
        r0, c0 = max(row0, 0), max(col0, 0)
        r1, c1 = min(row0 + nrows, self.height), min(col0 + ncols, self.width)
        if r1 <= r0 or c1 <= c0:
            return out
        block = self.dataset.read(1, window=Window(c0, r0, c1 - c0, r1 - r0), masked=True)
        values = np.ma.filled(block.astype(np.float64), np.nan)
        values[~np.isfinite(values)] = np.nan
        out[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = values
        return out


def utm_crs_for(lon: float, lat: float) -> CRS:
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@contextmanager
def open_metric_dem(dem_path: "Path | str") -> Iterator[MetricDem]:
    """The DEM on a metric grid (see the module docstring for the choices)."""
    dem_path = Path(dem_path)
    src = open_raster(dem_path, role="DEM", north_up=False)
    try:
        if src.crs.is_geographic:
            yield _warped_to_utm(src)
        else:
            factor = metres_per_unit(src.crs)
            xres, yres = abs(src.transform.a), abs(src.transform.e)
            if src.transform.b != 0 or src.transform.d != 0:
                raise UserError(f"{dem_path.name} is a rotated raster; warp it to a north-up grid first.")
            if abs(xres - yres) > 1e-6 * max(xres, yres):
                raise UserError(
                    f"{dem_path.name} has rectangular cells ({xres:g} x {yres:g}); resample it to square cells first."
                )
            yield MetricDem(src, src.crs, src.transform, src.width, src.height, xres * factor, False,
                            f"native grid, {xres * factor:.2f} m cells")
    finally:
        src.close()


def _warped_to_utm(src: "rasterio.io.DatasetReader") -> MetricDem:
    from rasterio.warp import calculate_default_transform
    from rasterio.warp import transform as warp_points

    centre_x = (src.bounds.left + src.bounds.right) / 2
    centre_y = (src.bounds.bottom + src.bounds.top) / 2
    lon, lat = warp_points(src.crs, CRS.from_epsg(4326), [centre_x], [centre_y])
    target = utm_crs_for(lon[0], lat[0])
    # native ground spacing at the centre: degrees of latitude are ~111.32 km, of longitude
    # shrink with cos(latitude)
    dx = abs(src.transform.a) * 111_320.0 * math.cos(math.radians(lat[0]))
    dy = abs(src.transform.e) * 111_320.0
    cell = round(math.sqrt(dx * dy), 3)
    transform, width, height = calculate_default_transform(
        src.crs, target, src.width, src.height, *src.bounds, resolution=(cell, cell)
    )
    vrt = WarpedVRT(src, crs=target, transform=transform, width=width, height=height,
                    resampling=Resampling.bilinear, src_nodata=src.nodata, nodata=np.nan, dtype="float64")
    return MetricDem(vrt, target, transform, width, height, cell, True,
                     f"warped from {src.crs.to_string()} to {target.to_string()}, bilinear, {cell:.2f} m cells")


# --- slope and aspect: Zevenbergen & Thorne (1987), SAGA's default -----------------------
def _neighbour_differences(z: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """z_N - z, z_S - z, z_E - z, z_W - z with SAGA's mirroring of missing neighbours."""
    pad = np.pad(z, 1, constant_values=np.nan)
    centre = pad[1:-1, 1:-1]
    north, south = pad[:-2, 1:-1] - centre, pad[2:, 1:-1] - centre  # row 0 is the north edge
    east, west = pad[1:-1, 2:] - centre, pad[1:-1, :-2] - centre

    def mirror(a: np.ndarray, opposite: np.ndarray) -> np.ndarray:
        out = np.where(np.isnan(a), -opposite, a)
        return np.where(np.isnan(out), 0.0, out)

    return mirror(north, south), mirror(south, north), mirror(east, west), mirror(west, east)


def slope_aspect(z: np.ndarray, cellsize_m: float) -> Tuple[np.ndarray, np.ndarray]:
    """Slope and aspect in radians of every cell (NaN where z is NaN; aspect NaN on flats).

    Aspect is clockwise from north and points downslope (0 = the slope faces north).
    """
    dn, ds, de, dw = _neighbour_differences(z)
    g_east = (de - dw) / (2.0 * cellsize_m)  # dz/dx towards east
    h_north = (dn - ds) / (2.0 * cellsize_m)  # dz/dy towards north
    slope = np.arctan(np.hypot(g_east, h_north))
    # the downslope direction is -(gradient); azimuth = atan2(east, north) of that vector
    aspect = np.mod(np.arctan2(-g_east, -h_north), 2.0 * np.pi)
    aspect[(g_east == 0) & (h_north == 0)] = np.nan
    invalid = np.isnan(z)
    slope[invalid] = np.nan
    aspect[invalid] = np.nan
    return slope, aspect


# --- topographic position index ----------------------------------------------------------
def disc_half_widths(radius_m: float, cellsize_m: float) -> np.ndarray:
    """Half-width in cells of each kernel row dy = -R..R of SAGA's circular neighbourhood
    (cells whose centre is within the radius)."""
    r = radius_m / cellsize_m
    reach = int(math.floor(r))
    dys = np.arange(-reach, reach + 1)
    return np.floor(np.sqrt(np.maximum(r * r - dys.astype(np.float64) ** 2, 0.0)) + 1e-9).astype(int)


def tpi_halo(radius_m: float, cellsize_m: float) -> int:
    return int(math.floor(radius_m / cellsize_m))


FFT_TPI_MIN_REACH = 12  # discs reaching this many cells or more are summed by FFT convolution


def tpi(z: np.ndarray, cellsize_m: float, radius_m: float = TPI_RADIUS_M) -> np.ndarray:
    """Elevation minus the mean elevation of the disc around each cell (metres).

    Cells within `tpi_halo` of the array edge see a truncated disc, so callers pass a
    window with that halo (or the DEM edge, where SAGA truncates too). Small discs are
    summed with running sums along rows (one pass per kernel row); large ones (a 100 m
    radius on a 1 m lidar grid is 201 kernel rows) by FFT convolution, whose cost does not
    grow with the radius."""
    widths = disc_half_widths(radius_m, cellsize_m)
    valid = ~np.isnan(z)
    if len(widths) // 2 >= FFT_TPI_MIN_REACH:
        total, count = _disc_sums_fft(z, valid, widths)
    else:
        total, count = _disc_sums_rows(z, valid, widths)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = z - total / count
    result[~valid | (count < 0.5)] = np.nan
    return result


def _disc_sums_rows(z: np.ndarray, valid: np.ndarray, widths: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Sum of valid elevations and their count over the disc around each cell, by running
    sums along rows: one pass per kernel row rather than one per kernel cell."""
    reach = len(widths) // 2
    rows, cols = z.shape
    values = np.where(valid, z, 0.0)
    pad = reach
    padded_v = np.zeros((rows + 2 * pad, cols + 2 * pad + 1))
    padded_n = np.zeros_like(padded_v)
    # leading zero column so that a row segment sum is csum[c1 + 1] - csum[c0]
    padded_v[pad : pad + rows, pad + 1 : pad + 1 + cols] = values
    padded_n[pad : pad + rows, pad + 1 : pad + 1 + cols] = valid
    csum_v = np.cumsum(padded_v, axis=1)
    csum_n = np.cumsum(padded_n, axis=1)
    total = np.zeros((rows, cols))
    count = np.zeros((rows, cols))
    for i, half in enumerate(widths):
        rs = slice(i, i + rows)  # kernel row dy = i - reach
        hi = slice(pad + half + 1, pad + half + 1 + cols)  # contiguous slices: no gathers
        lo = slice(pad - half, pad - half + cols)
        total += csum_v[rs, hi] - csum_v[rs, lo]
        count += csum_n[rs, hi] - csum_n[rs, lo]
    return total, count


def _disc_sums_fft(z: np.ndarray, valid: np.ndarray, widths: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The same sums by FFT convolution with the disc (zero padding, so no wrap-around).
    Elevations are taken relative to their mean first, so the float64 round-off of the
    transform (about 1e-12 of the largest sum) stays far below a millimetre; counts are
    whole numbers and are rounded back."""
    reach = len(widths) // 2
    kernel = np.zeros((2 * reach + 1, 2 * reach + 1))
    for i, half in enumerate(widths):
        kernel[i, reach - half : reach + half + 1] = 1.0
    rows, cols = z.shape
    shape = (_fast_length(rows + 2 * reach), _fast_length(cols + 2 * reach))
    offset = float(z[valid].mean()) if valid.any() else 0.0
    values = np.where(valid, z - offset, 0.0)
    kernel_f = np.fft.rfft2(kernel, shape)

    def convolve(a: np.ndarray) -> np.ndarray:
        full = np.fft.irfft2(np.fft.rfft2(a, shape) * kernel_f, shape)
        return full[reach : reach + rows, reach : reach + cols]

    count = np.rint(convolve(valid.astype(np.float64)))
    total = convolve(values) + offset * count
    return total, count


def _fast_length(n: int) -> int:
    """The smallest length >= n whose only prime factors are 2, 3 and 5 (fast FFT sizes)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


@dataclass(frozen=True)
class TpiStatistics:
    mean: float
    std: float
    n_cells: int

    def standardise(self, values: np.ndarray) -> np.ndarray:
        if not self.std > 0:
            return np.full_like(values, np.nan)
        return (values - self.mean) / self.std
