"""Opening the input raster, choosing the processing grid, and reading it window by window.

When the raster's ground sample distance differs from the model's by more than 5 %, a
GDAL warped VRT presents it on the model's grid (bilinear when upsampling, average when
downsampling) so windows are resampled on the fly and nothing is held in memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.features import geometry_mask
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window, from_bounds
from shapely.geometry.base import BaseGeometry

from ..core.errors import UserError
from ..core.scaling import valid_pixels

RESAMPLE_TOLERANCE = 0.05
STATS_SAMPLE_SIDE = 1024
# Above this many pixels the stretch sample is read as whole blocks spread over the raster:
# the decimated read of everything decodes every block, 16 s of a 66 s GPU run at the
# Beiluhe size (tools/profile_detect.py). Below it that read takes well under a second.
BLOCK_SAMPLE_ABOVE_PX = 64_000_000
STATS_SAMPLE_BLOCKS = 256  # 16 x 16 blocks, about 11 % of a Beiluhe-size raster's 512 px tiles
STATS_PIXELS_PER_BLOCK = 4096


def open_raster(path: Path | str, role: str = "Input raster", north_up: bool = True) -> rasterio.DatasetReader:
    """Open a raster for reading; refuse what the analysis cannot use, in one line. The one
    opener of the image, the DEM and label-export rasters, so all say the same. ``role`` names
    the raster in the not-found message; ``north_up=False`` leaves rotated grids to the caller
    (a geographic DEM is warped anyway)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{role} not found: {path}.")
    try:
        src = rasterio.open(path)
    except RasterioIOError:
        raise UserError(f"{path.name} is not a raster GDAL can read; give a GeoTIFF or another raster file.") from None
    if src.crs is None:
        src.close()
        raise UserError(f"{path.name} has no coordinate reference system; assign one (e.g. in QGIS or with gdal_edit.py -a_srs) and try again.")
    if north_up and not is_north_up(src.transform):
        src.close()
        raise UserError(f"{path.name} is rotated; warp it to a north-up grid (gdalwarp) first.")
    return src


def is_north_up(transform: Affine) -> bool:
    return transform.b == 0 and transform.d == 0


def ground_sample_distance(src: rasterio.DatasetReader) -> float:
    """Mean pixel size in metres (geographic rasters measured at their centre latitude)."""
    xres, yres = abs(src.transform.a), abs(src.transform.e)
    if src.crs.is_geographic:
        lat = math.radians((src.bounds.top + src.bounds.bottom) / 2)
        return 0.5 * (xres * 111_320.0 * math.cos(lat) + yres * 110_574.0)
    from .measures import metres_per_unit

    return 0.5 * (xres + yres) * metres_per_unit(src.crs)


@dataclass
class ProcessingGrid:
    """The window of the input to process and the model grid laid over it."""

    window: Window  # on the input grid
    input_transform: Affine  # of the window
    model_transform: Affine
    model_width: int
    model_height: int
    resampled: bool
    extent_polygon: Optional[BaseGeometry]  # in the raster CRS, when the extent is a polygon


def processing_grid(
    src: rasterio.DatasetReader, model_gsd: float, extent_geometry: Optional[BaseGeometry] = None, extent_is_box: bool = True
) -> ProcessingGrid:
    full = Window(0, 0, src.width, src.height)
    window = full
    if extent_geometry is not None:
        if extent_geometry.is_empty:
            raise UserError("The extent is empty; draw or choose an extent that overlaps the raster.")
        xmin, ymin, xmax, ymax = extent_geometry.bounds
        try:
            wanted = from_bounds(xmin, ymin, xmax, ymax, src.transform).round_offsets(op="floor").round_lengths(op="ceil")
            window = wanted.intersection(full)
        except Exception:  # rasterio raises WindowError when they do not intersect
            window = None
        if window is None or window.width < 1 or window.height < 1:
            raise UserError("The extent does not overlap the raster; choose an extent inside the image.")
    window = Window(int(window.col_off), int(window.row_off), int(window.width), int(window.height))
    input_transform = src.window_transform(window)
    factor = model_gsd / ground_sample_distance(src)  # model pixel size in input pixels
    resampled = abs(factor - 1.0) > RESAMPLE_TOLERANCE
    if not resampled:
        factor = 1.0
    model_transform = input_transform * Affine.scale(factor)
    model_width = max(1, int(math.ceil(window.width / factor)))
    model_height = max(1, int(math.ceil(window.height / factor)))
    return ProcessingGrid(
        window, input_transform, model_transform, model_width, model_height, resampled,
        None if (extent_geometry is None or extent_is_box) else extent_geometry,
    )


class RasterRowSource:
    """Rows of the model grid, read from the input (through a warped VRT when resampling)."""

    def __init__(self, src: rasterio.DatasetReader, bands: Sequence[int], grid: ProcessingGrid) -> None:
        self.bands = list(bands)
        self.grid = grid
        self.nodata = src.nodata
        self.height, self.width = grid.model_height, grid.model_width
        self._vrt = None
        if grid.resampled:
            upsampling = abs(grid.model_transform.a) < abs(grid.input_transform.a)
            self._vrt = WarpedVRT(
                src, crs=src.crs, transform=grid.model_transform, width=grid.model_width, height=grid.model_height,
                resampling=Resampling.bilinear if upsampling else Resampling.average,
            )
            self._reader, self._col0, self._row0 = self._vrt, 0, 0
        else:
            self._reader, self._col0, self._row0 = src, int(grid.window.col_off), int(grid.window.row_off)

    def read_rows(self, row0: int, nrows: int) -> Tuple[np.ndarray, np.ndarray]:
        nrows = max(0, min(nrows, self.height - row0))
        window = Window(self._col0, self._row0 + row0, self.width, nrows)
        data = self._reader.read(self.bands, window=window)
        valid = valid_pixels(data, self.nodata)
        if self.grid.extent_polygon is not None and nrows:
            transform = self.grid.model_transform * Affine.translation(0, row0)
            valid &= geometry_mask([self.grid.extent_polygon], (nrows, self.width), transform, invert=True)
        return data, valid

    def sample_for_stretch(self) -> Tuple[np.ndarray, np.ndarray]:
        """Pixels for the percentile limits: a decimated read of the whole grid (at most ~1024 px
        a side), or on large rasters read without resampling, whole blocks on a regular grid."""
        if self._vrt is None and self.height * self.width > BLOCK_SAMPLE_ABOVE_PX:
            return self._block_sample()
        scale = max(1.0, max(self.height, self.width) / STATS_SAMPLE_SIDE)
        shape = (len(self.bands), max(1, int(self.height / scale)), max(1, int(self.width / scale)))
        window = Window(self._col0, self._row0, self.width, self.height)
        data = self._reader.read(self.bands, window=window, out_shape=shape, resampling=Resampling.nearest)
        return data, valid_pixels(data, self.nodata)

    def _block_sample(self) -> Tuple[np.ndarray, np.ndarray]:
        """(C, 1, N) values and validity from STATS_SAMPLE_BLOCKS blocks spread evenly over the
        grid, each thinned to about STATS_PIXELS_PER_BLOCK pixels: a million pixels, as the
        decimated read gives, while decoding only the blocks read."""
        block_h, block_w = (min(b, n) for b, n in zip(self._reader.block_shapes[0], (self.height, self.width)))
        side = int(math.ceil(math.sqrt(STATS_SAMPLE_BLOCKS)))
        cols = np.unique(np.linspace(0, max(0, self.width - block_w), side).astype(int) // block_w * block_w)
        down = int(math.ceil(STATS_SAMPLE_BLOCKS / len(cols)))  # striped files: one block a row, so more rows
        rows = np.unique(np.linspace(0, max(0, self.height - block_h), down).astype(int) // block_h * block_h)
        step = max(1, int(math.sqrt(block_h * block_w / STATS_PIXELS_PER_BLOCK)))
        parts = []
        for r in rows:
            for c in cols:
                window = Window(self._col0 + int(c), self._row0 + int(r), block_w, block_h)
                parts.append(self._reader.read(self.bands, window=window)[:, ::step, ::step].reshape(len(self.bands), -1))
        data = np.concatenate(parts, axis=1)[:, None, :]
        return data, valid_pixels(data, self.nodata)

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()


PROBABILITY_NODATA = 255  # stored as percent 0..100, so 255 is free for "no data"


def probability_profile(crs: CRS, transform: Affine, width: int, height: int) -> dict:
    return {
        "driver": "GTiff", "dtype": "uint8", "count": 1, "crs": crs, "transform": transform,
        "width": width, "height": height, "nodata": PROBABILITY_NODATA, "tiled": True,
        "blockxsize": 256, "blockysize": 256, "compress": "deflate", "zlevel": 1, "BIGTIFF": "IF_SAFER",
    }


class ProbabilityWriter:
    """Writes probability rows as percent (uint8 0..100, 255 = no data) into a GeoTIFF."""

    def __init__(self, path: Path, crs: CRS, transform: Affine, width: int, height: int, description: str = "") -> None:
        self.path = Path(path)
        self._dst = rasterio.open(self.path, "w", **probability_profile(crs, transform, width, height))
        self._dst.set_band_description(1, "thaw slump probability (%)")
        if description:
            self._dst.update_tags(model=description)

    def write_rows(self, row0: int, probability: np.ndarray, valid: np.ndarray) -> None:
        self.write_percent(row0, probability_percent(probability, valid))

    def write_percent(self, row0: int, percent: np.ndarray) -> None:
        """Rows already in the stored form (uint8 percent, PROBABILITY_NODATA where invalid)."""
        self._dst.write(percent, 1, window=Window(0, row0, percent.shape[1], percent.shape[0]))

    def close(self) -> None:
        self._dst.close()


def probability_percent(probability: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Probabilities 0..1 as stored: uint8 whole percent, PROBABILITY_NODATA where invalid.
    Works in float32 in place: on a 30000 px wide raster each temporary is ~45 MB."""
    scaled = np.clip(probability, 0.0, 1.0, dtype=np.float32)
    scaled *= 100.0
    np.rint(scaled, out=scaled)
    percent = scaled.astype(np.uint8)
    percent[~valid] = PROBABILITY_NODATA
    return percent
