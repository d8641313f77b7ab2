"""Per-polygon morphometry of mapped thaw slumps: shape, terrain and solar radiation.

The one function every front end calls: `compute_morphometry` (file in, file out) or
`morphometry_for_geometries` (in memory, for the dock and detection). Terrain is computed
in one pass over the DEM in blocks of BLOCK_CELLS square: each block is read once with the
polygons whose box centre falls in it and the halo the 3x3 and TPI kernels need; its TPI
serves the polygons and the whole-DEM TPI statistics at once (see terrain_statistics). Solar
radiation reads, per block, the terrain within max_distance_m that can cast shadows. Memory
stays bounded whatever the DEM size.

A polygon's terrain statistics use the DEM cells whose centres fall inside it (cells of a
polygon smaller than a cell: the one cell under its representative point). Polygons off the
DEM or only on nodata get None and one MorphometryWarning naming them; nothing raises.
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.transform import rowcol
from rasterio.warp import transform as warp_points
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry.base import BaseGeometry

from ..core.errors import UserError
from ..core.progress import Progress
from ..engine.measures import crs_from_any
from ..engine.vector_io import PolygonFeature, read_polygons, reproject_geometry, write_polygons
from . import solar_horizon
from . import solar_radiation as solar
from .shape_metrics import SHAPE_FIELDS, shape_metrics
from .terrain import TPI_RADIUS_M, MetricDem, TpiStatistics, open_metric_dem, slope_aspect, tpi, tpi_halo

TERRAIN_FIELDS: Dict[str, str] = {
    "elev_mean": "float",
    "elev_min": "float",
    "elev_max": "float",
    "relief_m": "float",
    "slope_mean": "float",
    "slope_max": "float",
    "aspect_mean": "float",
    "facing": "str:2",
    "northness": "float",
    "tpi_mean": "float",
    "tpi_std_mean": "float",
    "pisr_mean": "float",
}
MORPHOMETRY_FIELDS: Dict[str, str] = {**SHAPE_FIELDS, **TERRAIN_FIELDS}

FACING_NAMES = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
BLOCK_CELLS = 512  # the DEM is read in blocks of this many cells square (plus halo): bounded memory
GDAL_CACHE_MB = 64


class MorphometryWarning(UserWarning):
    """Some polygons got empty terrain fields (off the DEM or on nodata)."""


def facing_of(aspect_deg: Optional[float]) -> Optional[str]:
    if aspect_deg is None or not math.isfinite(aspect_deg):
        return None
    return FACING_NAMES[int(((aspect_deg + 22.5) % 360.0) // 45.0)]


def circular_mean_deg(angles_rad: np.ndarray) -> Optional[float]:
    if angles_rad.size == 0:
        return None
    s, c = np.sin(angles_rad).mean(), np.cos(angles_rad).mean()
    if math.hypot(s, c) < 1e-12:  # opposite aspects cancel: no mean direction
        return None
    return float(math.degrees(math.atan2(s, c)) % 360.0)


def empty_terrain() -> Dict[str, Optional[float]]:
    return {name: None for name in TERRAIN_FIELDS}


def morphometry_for_geometries(
    geoms: Sequence[BaseGeometry],
    crs: "CRS | str | int",
    dem_path: "Path | str | None" = None,
    progress: Optional[Progress] = None,
    *,
    solar_radiation: bool = True,
    solar_settings: solar.SolarSettings = solar.SolarSettings(),
) -> List[Dict[str, object]]:
    """One dict of MORPHOMETRY_FIELDS per geometry (terrain fields None without a DEM)."""
    progress = progress or Progress()
    crs = crs_from_any(crs)
    shape_part = progress.sub(0.0, 0.1 if dem_path else 1.0)
    records: List[Dict[str, object]] = []
    for i, geom in enumerate(geoms):
        if i % 200 == 0:
            shape_part.check_cancelled()
            shape_part.report(i / max(len(geoms), 1), "shape")
        record: Dict[str, object] = dict(shape_metrics(geom, crs))
        record.update(empty_terrain())
        records.append(record)
    shape_part.report(1.0, "shape")
    if dem_path is not None and len(geoms):
        terrain = terrain_statistics(geoms, crs, dem_path, progress.sub(0.1, 1.0), solar_radiation, solar_settings)
        for record, values in zip(records, terrain):
            record.update(values)
    return records


def terrain_statistics(
    geoms: Sequence[BaseGeometry],
    crs: CRS,
    dem_path: "Path | str",
    progress: Progress,
    solar_radiation: bool = True,
    solar_settings: solar.SolarSettings = solar.SolarSettings(),
) -> List[Dict[str, object]]:
    """Terrain fields of every polygon in ONE pass over the DEM, block by block.

    Each block of BLOCK_CELLS x BLOCK_CELLS cells is read once, with the polygons assigned
    to it (by the centre of their bounding box) and the TPI/3x3 halo. Its TPI feeds both the
    polygons' statistics and the whole-DEM TPI mean and standard deviation (summed over the
    block's own cells only, so each DEM cell counts once); the standardised TPI of a polygon
    is linear in its mean TPI, so it is applied once the pass is over. Slope and aspect are
    computed only on each polygon's bounding box (plus one cell)."""
    results = [empty_terrain() for _ in geoms]
    # one GDAL environment for the whole pass (rasterio otherwise sets one up per rasterize
    # call), with a bounded block cache: each DEM block is read once, so GDAL's default cache
    # (5 % of the RAM) would only hold memory
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024 * 1024), open_metric_dem(dem_path) as dem:
        on_grid = [reproject_geometry(g, crs, dem.crs) for g in geoms]
        latitudes = _latitudes(on_grid, dem.crs)
        bounds = _pixel_bounds_all(on_grid, dem)
        blocks = _assign_blocks(bounds, dem)
        halo = tpi_halo(TPI_RADIUS_M, dem.cellsize_m) + 2
        accumulator = TpiAccumulator()
        n_blocks = math.ceil(dem.height / BLOCK_CELLS) * math.ceil(dem.width / BLOCK_CELLS)
        done = 0
        for block_row in range(0, dem.height, BLOCK_CELLS):
            for block_col in range(0, dem.width, BLOCK_CELLS):
                progress.check_cancelled()
                members = blocks.get((block_row // BLOCK_CELLS, block_col // BLOCK_CELLS), [])
                _terrain_for_block(block_row, block_col, members, on_grid, bounds, latitudes, dem, halo,
                                   accumulator, results, solar_radiation, solar_settings)
                done += 1
                progress.report(done / n_blocks, "terrain")
        stats = accumulator.statistics()
        for record in results:
            if record["tpi_mean"] is not None and stats.std > 0:
                record["tpi_std_mean"] = float(stats.standardise(np.array([record["tpi_mean"]]))[0])
    missing = [i for i, r in enumerate(results) if r["elev_mean"] is None]
    if missing:
        shown = ", ".join(str(i + 1) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        warnings.warn(
            f"{len(missing)} of {len(geoms)} polygons lie off the DEM or on nodata; their terrain fields are empty "
            f"(features {shown}).",
            MorphometryWarning,
            stacklevel=2,
        )
    return results


def _latitudes(geoms: Sequence[BaseGeometry], crs: CRS) -> List[float]:
    points = [g.representative_point() if not g.is_empty else shapely.Point(0, 0) for g in geoms]
    if not points:
        return []
    _, lats = warp_points(crs, CRS.from_epsg(4326), [p.x for p in points], [p.y for p in points])
    return [float(v) for v in lats]


def _pixel_bounds_all(geoms: Sequence[BaseGeometry], dem: MetricDem) -> np.ndarray:
    """(row0, col0, row1, col1) cell bounds of each geometry's bounding box (rows grow south);
    row1/col1 exclusive, at least one cell; -1 rows for empty geometries."""
    out = np.full((len(geoms), 4), -1, dtype=np.int64)
    if not len(geoms):
        return out
    box = shapely.bounds(np.array(geoms, dtype=object))  # xmin, ymin, xmax, ymax (NaN when empty)
    inverse = ~dem.transform
    corners_x = box[:, [0, 2, 0, 2]]
    corners_y = box[:, [1, 3, 3, 1]]
    cols = inverse.a * corners_x + inverse.b * corners_y + inverse.c
    rows = inverse.d * corners_x + inverse.e * corners_y + inverse.f
    ok = np.isfinite(box).all(axis=1)
    out[ok, 0] = np.floor(rows[ok].min(axis=1))
    out[ok, 1] = np.floor(cols[ok].min(axis=1))
    out[ok, 2] = np.maximum(np.ceil(rows[ok].max(axis=1)), out[ok, 0] + 1)
    out[ok, 3] = np.maximum(np.ceil(cols[ok].max(axis=1)), out[ok, 1] + 1)
    return out


def _assign_blocks(bounds: np.ndarray, dem: MetricDem) -> Dict[tuple, List[int]]:
    """Polygons touching the DEM, keyed by the block holding the centre of their box
    (clipped to the DEM); polygons off the DEM keep their empty values."""
    blocks: Dict[tuple, List[int]] = defaultdict(list)
    for i, (r0, c0, r1, c1) in enumerate(bounds.tolist()):
        if r1 <= 0 or c1 <= 0 or r0 >= dem.height or c0 >= dem.width or (r0 == -1 and r1 == -1):
            continue
        row = min(max((r0 + r1) // 2, 0), dem.height - 1)
        col = min(max((c0 + c1) // 2, 0), dem.width - 1)
        blocks[(row // BLOCK_CELLS, col // BLOCK_CELLS)].append(i)
    return blocks


def polygon_cells(geom: BaseGeometry, transform, shape: tuple) -> np.ndarray:
    """Boolean mask of the cells (of a grid window) whose centres fall inside the polygon;
    for a polygon that holds no cell centre, the cell under its representative point.

    Cell centres are tested with GEOS point-in-polygon (shapely.contains_xy on the prepared
    polygon): the same cells GDAL's rasterizer burns without all_touched, except for centres
    lying exactly on the outline, and ~20x faster than a rasterize call per polygon."""
    nrows, ncols = shape
    centre_cols = np.arange(ncols) + 0.5
    centre_rows = (np.arange(nrows) + 0.5)[:, None]
    xs = transform.c + transform.a * centre_cols + transform.b * centre_rows
    ys = transform.f + transform.d * centre_cols + transform.e * centre_rows
    shapely.prepare(geom)
    inside = shapely.contains_xy(geom, xs, ys)
    if not inside.any():
        p = geom.representative_point()
        r, c = rowcol(transform, p.x, p.y)
        if 0 <= r < nrows and 0 <= c < ncols:
            inside[r, c] = True
    return inside


def _terrain_for_block(
    block_row: int,
    block_col: int,
    members: List[int],
    geoms: Sequence[BaseGeometry],
    bounds: np.ndarray,
    latitudes: Sequence[float],
    dem: MetricDem,
    halo: int,
    accumulator: "TpiAccumulator",
    results: List[Dict[str, object]],
    solar_radiation: bool,
    solar_settings: solar.SolarSettings,
) -> None:
    block_r1 = min(block_row + BLOCK_CELLS, dem.height)
    block_c1 = min(block_col + BLOCK_CELLS, dem.width)
    # the window: the block and its polygons' boxes, plus the kernels' halo
    r0, c0, r1, c1 = block_row, block_col, block_r1, block_c1
    if members:
        b = bounds[members]
        r0, c0 = min(r0, int(b[:, 0].min())), min(c0, int(b[:, 1].min()))
        r1, c1 = max(r1, int(b[:, 2].max())), max(c1, int(b[:, 3].max()))
    r0, c0, r1, c1 = r0 - halo, c0 - halo, r1 + halo, c1 + halo
    z = dem.read(r0, c0, r1 - r0, c1 - c0)
    if np.isnan(z).all():
        return
    tpi_m = tpi(z, dem.cellsize_m, TPI_RADIUS_M)
    accumulator.add(tpi_m[block_row - r0 : block_r1 - r0, block_col - c0 : block_c1 - c0])
    if not members:
        return
    transform = window_transform(Window(c0, r0, c1 - c0, r1 - r0), dem.transform)
    cells: Dict[int, tuple] = {}
    for i in members:
        # the polygon's box in window coordinates, one more cell around it for the 3x3 kernel
        pr0, pc0, pr1, pc1 = (int(v) for v in bounds[i])
        pr0, pc0, pr1, pc1 = pr0 - r0, pc0 - c0, pr1 - r0, pc1 - c0
        box_transform = transform * Affine.translation(pc0, pr0)
        inside = polygon_cells(geoms[i], box_transform, (pr1 - pr0, pc1 - pc0))
        z_box = z[pr0 - 1 : pr1 + 1, pc0 - 1 : pc1 + 1]
        inside &= ~np.isnan(z_box[1:-1, 1:-1])
        if not inside.any():
            continue
        slope, aspect = slope_aspect(z_box, dem.cellsize_m)
        rows, cols = np.nonzero(inside)
        results[i].update(_cell_statistics(
            z_box[rows + 1, cols + 1], slope[rows + 1, cols + 1], aspect[rows + 1, cols + 1], tpi_m[rows + pr0, cols + pc0]
        ))
        cells[i] = (rows + pr0, cols + pc0)
    if solar_radiation and cells:
        _solar_for_group(cells, latitudes, dem, r0, c0, z, results, solar_settings)


class TpiAccumulator:
    """Running sums for the TPI's mean and population standard deviation over the DEM
    (SAGA's STANDARD=1 standardises over the whole grid)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.total_sq = 0.0
        self.n = 0

    def add(self, values: np.ndarray) -> None:
        values = values[~np.isnan(values)]
        self.total += float(values.sum())
        self.total_sq += float(np.dot(values, values))
        self.n += values.size

    def statistics(self) -> TpiStatistics:
        if self.n == 0:
            return TpiStatistics(float("nan"), float("nan"), 0)
        mean = self.total / self.n
        return TpiStatistics(mean, math.sqrt(max(self.total_sq / self.n - mean * mean, 0.0)), self.n)


def _cell_statistics(z, slope, aspect, tpi_values) -> Dict[str, object]:
    valid_aspect = aspect[~np.isnan(aspect)]
    mean_aspect = circular_mean_deg(valid_aspect)
    tpi_valid = tpi_values[~np.isnan(tpi_values)]
    tpi_mean = float(tpi_valid.mean()) if tpi_valid.size else None
    slope_deg = np.degrees(slope)
    return {
        "elev_mean": float(z.mean()),
        "elev_min": float(z.min()),
        "elev_max": float(z.max()),
        "relief_m": float(z.max() - z.min()),
        "slope_mean": float(slope_deg.mean()),
        "slope_max": float(slope_deg.max()),
        "aspect_mean": mean_aspect,
        "facing": facing_of(mean_aspect),
        "northness": float(np.cos(valid_aspect).mean()) if valid_aspect.size else None,
        "tpi_mean": tpi_mean,
        "tpi_std_mean": None,  # set once the whole DEM's TPI statistics are known
    }


def _solar_for_group(cells, latitudes, dem: MetricDem, r0: int, c0: int, z: np.ndarray, results, settings) -> None:
    """pisr_mean of each polygon (cells: index -> (rows, cols) in the window z at r0, c0):
    SAGA's shadows (replayed, or from horizons per azimuth, see SolarSettings.shadow_method)
    on a window reaching max_distance_m beyond the group's window, then the daily insolation
    of each polygon's cells."""
    shape = z.shape
    reach = int(math.ceil(settings.max_distance_m / dem.cellsize_m))
    # the shadow window: clipped to the DEM (nothing beyond it can cast a shadow)
    h_r0, h_c0 = max(r0 - reach, 0), max(c0 - reach, 0)
    h_r1, h_c1 = min(r0 + shape[0] + reach, dem.height), min(c0 + shape[1] + reach, dem.width)
    z_big = dem.read(h_r0, h_c0, h_r1 - h_r0, h_c1 - h_c0)
    flat = {i: np.ravel_multi_index(rc, shape) for i, rc in cells.items()}
    union = np.unique(np.concatenate(list(flat.values())))
    rows, cols = np.unravel_index(union, shape)
    rows_big, cols_big = rows + (r0 - h_r0), cols + (c0 - h_c0)
    # slope and aspect from the block's window: its halo covers the 3x3 kernel and it is NaN
    # beyond the DEM, so the values equal SAGA's on the whole grid
    slope, aspect = slope_aspect(z, dem.cellsize_m)
    cell_slope, cell_aspect = slope[rows, cols], aspect[rows, cols]
    # the Sun is taken at each polygon's latitude (rounded to 0.01 deg, so nearby polygons
    # share one table of sun positions), or at the one latitude the settings fix
    by_latitude: Dict[float, List[int]] = defaultdict(list)
    for i in cells:
        latitude = settings.latitude_deg if settings.latitude_deg is not None else round(latitudes[i], 2)
        by_latitude[latitude].append(i)
    for latitude, members in by_latitude.items():
        table = solar.sun_table(latitude, settings)
        if settings.method_for(dem.cellsize_m) == "replay":
            _replayed_means(members, flat, union, rows_big, cols_big, z_big, cell_slope, cell_aspect, table, dem, results, settings)
        else:
            _horizon_means(members, cells, (r0 - h_r0, c0 - h_c0), z_big, slope, aspect, table, dem, results, settings)


def _replayed_means(members, flat, union, rows_big, cols_big, z_big, cell_slope, cell_aspect, table, dem, results, settings) -> None:
    """pisr_mean by replaying SAGA's rays moment by moment (shadow_method "replay")."""
    wanted = np.unique(np.searchsorted(union, np.concatenate([flat[i] for i in members])))
    daily = np.full(union.size, np.nan)
    daily[wanted] = solar.daily_insolation(
        z_big, rows_big[wanted], cols_big[wanted], cell_slope[wanted], cell_aspect[wanted], dem.cellsize_m, table, settings
    )
    for i in members:
        values = daily[np.searchsorted(union, flat[i])]
        values = values[~np.isnan(values)]
        results[i]["pisr_mean"] = float(values.mean()) if values.size else None


def _horizon_means(members, cells, shift, z_big, slope, aspect, table, dem, results, settings) -> None:
    """pisr_mean from horizons per azimuth computed once per polygon box (shadow_method
    "horizon", see solar_horizon.py)."""
    plan = solar_horizon.sun_plan(table)
    z32 = z_big.astype(np.float32)
    z_top = float(np.nanmax(z_big))
    for i in members:
        rows, cols = cells[i]
        rb, cb = rows + shift[0], cols + shift[1]
        box = (int(rb.min()), int(cb.min()), int(rb.max()) + 1, int(cb.max()) + 1)
        horizons = solar_horizon.box_horizons(z32, box, plan.fan, plan.fan_tan_min, dem.cellsize_m, z_top)
        cell_h = horizons[:, rb - box[0], cb - box[1]]
        daily = solar_horizon.daily_insolation_fast(
            cell_h, plan, z_big[rb, cb], slope[rows, cols], aspect[rows, cols], table, settings)
        values = daily[~np.isnan(daily)]
        results[i]["pisr_mean"] = float(values.mean()) if values.size else None


# --- file in, file out ------------------------------------------------------------------
def kept_input_fields(names: Iterable[str]) -> List[str]:
    """The input fields a morphometry output keeps: all but those it computes again (so
    detection's area_m2/perimeter_m are replaced by identical new values, never doubled)."""
    return [name for name in names if name not in MORPHOMETRY_FIELDS]


def merged_fields(inputs: Mapping[str, Any], computed: Mapping[str, Any]) -> Dict[str, Any]:
    """Input fields (or values) kept, then the computed ones: the one merge rule for the
    file writer here and the Processing algorithm's feature sink."""
    return {**{name: inputs[name] for name in kept_input_fields(inputs)}, **computed}


def compute_morphometry(
    input_path: "Path | str",
    output_path: "Path | str",
    dem_path: "Path | str | None" = None,
    input_layer: Optional[str] = None,
    output_layer: str = "morphometry",
    overwrite: bool = False,
    progress: Optional[Progress] = None,
    *,
    solar_radiation: bool = True,
    solar_settings: solar.SolarSettings = solar.SolarSettings(),
) -> Path:
    """Write a copy of the polygons with MORPHOMETRY_FIELDS added (replacing fields of the
    same names, so detection's area_m2/perimeter_m are recomputed identically)."""
    progress = progress or Progress()
    layer = read_polygons(input_path, input_layer)
    if not layer.features:
        raise UserError(f"{Path(input_path).name} holds no polygons; give a polygon layer with features.")
    if not layer.crs_wkt:
        raise UserError(f"{Path(input_path).name} has no coordinate reference system; assign one and retry.")
    records = morphometry_for_geometries(
        [f.geometry for f in layer.features], layer.crs_wkt, dem_path, progress.sub(0.0, 0.95),
        solar_radiation=solar_radiation, solar_settings=solar_settings,
    )
    schema = merged_fields(layer.schema, MORPHOMETRY_FIELDS)
    features = [PolygonFeature(f.geometry, merged_fields(f.properties, record)) for f, record in zip(layer.features, records)]
    out = write_polygons(output_path, output_layer, features, layer.crs_wkt, schema, overwrite=overwrite)
    progress.report(1.0, "written")
    return out
