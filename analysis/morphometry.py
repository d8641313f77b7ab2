"""Per-polygon morphometry of mapped thaw slumps: shape, terrain and solar radiation.

The one function every front end calls: `compute_morphometry` (file in, file out) or
`morphometry_for_geometries` (in memory, for the dock and detection). Terrain is computed
window by window: polygons are grouped by the DEM tile their centre falls in, each group
reads its window plus the halo the 3x3 and TPI kernels need (and, for shadows, the horizon
search distance), so memory stays bounded whatever the DEM size.

A polygon's terrain statistics use the DEM cells whose centres fall inside it (cells of a
polygon smaller than a cell: the one cell under its representative point). Polygons off the
DEM or only on nodata get None and one MorphometryWarning naming them; nothing raises.
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import shapely
from rasterio.crs import CRS
from rasterio.features import geometry_mask
from rasterio.transform import rowcol
from rasterio.warp import transform as warp_points
from rasterio.windows import Window, transform as window_transform
from shapely.geometry.base import BaseGeometry

from ..engine.errors import UserError
from ..engine.measures import crs_from_any
from ..engine.progress import Progress
from ..engine.vector_io import PolygonFeature, read_polygons, reproject_geometry, write_polygons
from . import solar_radiation as solar
from .shape_metrics import SHAPE_FIELDS, shape_metrics
from .terrain import TPI_RADIUS_M, MetricDem, open_metric_dem, slope_aspect, tpi, tpi_halo, tpi_statistics

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
GROUP_TILE_CELLS = 512  # polygons are processed in groups per DEM tile of this many cells


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
    results = [empty_terrain() for _ in geoms]
    with open_metric_dem(dem_path) as dem:
        stats = tpi_statistics(dem, TPI_RADIUS_M, progress.sub(0.0, 0.3))
        on_grid = [reproject_geometry(g, crs, dem.crs) for g in geoms]
        latitudes = _latitudes(on_grid, dem.crs)
        groups = _group_by_tile(on_grid, dem)
        halo = tpi_halo(TPI_RADIUS_M, dem.cellsize_m) + 2
        work = progress.sub(0.3, 1.0)
        done = 0
        for indices in groups.values():
            work.check_cancelled()
            _terrain_for_group(indices, on_grid, latitudes, dem, halo, stats, results, solar_radiation, solar_settings)
            done += len(indices)
            work.report(done / len(geoms), "terrain")
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


def _group_by_tile(geoms: Sequence[BaseGeometry], dem: MetricDem) -> Dict[tuple, List[int]]:
    groups: Dict[tuple, List[int]] = defaultdict(list)
    inverse = ~dem.transform
    for i, g in enumerate(geoms):
        if g.is_empty:
            continue
        p = g.representative_point()
        col, row = inverse * (p.x, p.y)
        groups[(int(math.floor(row / GROUP_TILE_CELLS)), int(math.floor(col / GROUP_TILE_CELLS)))].append(i)
    return groups


def _pixel_bounds(geom: BaseGeometry, dem: MetricDem) -> tuple:
    xmin, ymin, xmax, ymax = geom.bounds
    inverse = ~dem.transform
    cols, rows = zip(*(inverse * (x, y) for x, y in ((xmin, ymin), (xmax, ymax), (xmin, ymax), (xmax, ymin))))
    return int(math.floor(min(rows))), int(math.floor(min(cols))), int(math.ceil(max(rows))), int(math.ceil(max(cols)))


def polygon_cells(geom: BaseGeometry, transform, shape: tuple) -> np.ndarray:
    """Boolean mask of the cells (of a grid window) whose centres fall inside the polygon;
    for a polygon that holds no cell centre, the cell under its representative point."""
    inside = ~geometry_mask([geom], out_shape=shape, transform=transform, all_touched=False)
    if not inside.any():
        p = geom.representative_point()
        r, c = rowcol(transform, p.x, p.y)
        if 0 <= r < shape[0] and 0 <= c < shape[1]:
            inside[r, c] = True
    return inside


def _terrain_for_group(
    indices: List[int],
    geoms: Sequence[BaseGeometry],
    latitudes: Sequence[float],
    dem: MetricDem,
    halo: int,
    stats,
    results: List[Dict[str, object]],
    solar_radiation: bool,
    solar_settings: solar.SolarSettings,
) -> None:
    bounds = [_pixel_bounds(geoms[i], dem) for i in indices]
    r0 = min(b[0] for b in bounds) - halo
    c0 = min(b[1] for b in bounds) - halo
    r1 = max(b[2] for b in bounds) + halo
    c1 = max(b[3] for b in bounds) + halo
    # polygons entirely off the DEM keep their empty values
    if r1 <= 0 or c1 <= 0 or r0 >= dem.height or c0 >= dem.width:
        return
    z = dem.read(r0, c0, r1 - r0, c1 - c0)
    if np.isnan(z).all():
        return
    transform = window_transform(Window(c0, r0, c1 - c0, r1 - r0), dem.transform)
    slope, aspect = slope_aspect(z, dem.cellsize_m)
    tpi_m = tpi(z, dem.cellsize_m, TPI_RADIUS_M)
    masks: Dict[int, np.ndarray] = {}
    for i in indices:
        cells = polygon_cells(geoms[i], transform, z.shape) & ~np.isnan(z)
        if cells.any():
            masks[i] = cells
            results[i].update(_cell_statistics(z[cells], slope[cells], aspect[cells], tpi_m[cells], stats))
    if solar_radiation and masks:
        _solar_for_group(masks, latitudes, dem, r0, c0, z.shape, results, solar_settings)


def _cell_statistics(z, slope, aspect, tpi_values, stats) -> Dict[str, object]:
    valid_aspect = aspect[~np.isnan(aspect)]
    mean_aspect = circular_mean_deg(valid_aspect)
    tpi_valid = tpi_values[~np.isnan(tpi_values)]
    tpi_mean = float(tpi_valid.mean()) if tpi_valid.size else None
    return {
        "elev_mean": float(z.mean()),
        "elev_min": float(z.min()),
        "elev_max": float(z.max()),
        "relief_m": float(z.max() - z.min()),
        "slope_mean": float(np.degrees(slope).mean()),
        "slope_max": float(np.degrees(slope).max()),
        "aspect_mean": mean_aspect,
        "facing": facing_of(mean_aspect),
        "northness": float(np.cos(valid_aspect).mean()) if valid_aspect.size else None,
        "tpi_mean": tpi_mean,
        "tpi_std_mean": float(stats.standardise(np.array([tpi_mean]))[0]) if tpi_mean is not None and stats.std > 0 else None,
    }


def _solar_for_group(masks, latitudes, dem: MetricDem, r0: int, c0: int, shape, results, settings) -> None:
    """pisr_mean of each polygon: SAGA's shadows replayed on a window reaching max_distance_m
    beyond the group's window, then the daily insolation of each polygon's cells."""
    reach = int(math.ceil(settings.max_distance_m / dem.cellsize_m))
    # the shadow window: clipped to the DEM (nothing beyond it can cast a shadow)
    h_r0, h_c0 = max(r0 - reach, 0), max(c0 - reach, 0)
    h_r1, h_c1 = min(r0 + shape[0] + reach, dem.height), min(c0 + shape[1] + reach, dem.width)
    z_big = dem.read(h_r0, h_c0, h_r1 - h_r0, h_c1 - h_c0)
    union = np.zeros(shape, dtype=bool)
    for m in masks.values():
        union |= m
    rows, cols = np.nonzero(union)
    rows_big, cols_big = rows + (r0 - h_r0), cols + (c0 - h_c0)
    slope, aspect = slope_aspect(z_big, dem.cellsize_m)  # the window is clipped to the DEM: edges as SAGA's
    cell_slope, cell_aspect = slope[rows_big, cols_big], aspect[rows_big, cols_big]
    cell_index = -np.ones(shape, dtype=np.int64)
    cell_index[rows, cols] = np.arange(rows.size)
    # the Sun is taken at each polygon's latitude (rounded to 0.01 deg, so nearby polygons
    # share one table of sun positions), or at the one latitude the settings fix
    by_latitude: Dict[float, List[int]] = defaultdict(list)
    for i in masks:
        latitude = settings.latitude_deg if settings.latitude_deg is not None else round(latitudes[i], 2)
        by_latitude[latitude].append(i)
    for latitude, members in by_latitude.items():
        table = solar.sun_table(latitude, settings)
        wanted = np.unique(np.concatenate([cell_index[masks[i]] for i in members]))
        daily = np.full(rows.size, np.nan)
        daily[wanted] = solar.daily_insolation(
            z_big, rows_big[wanted], cols_big[wanted], cell_slope[wanted], cell_aspect[wanted], dem.cellsize_m, table, settings
        )
        for i in members:
            values = daily[cell_index[masks[i]]]
            values = values[~np.isnan(values)]
            results[i]["pisr_mean"] = float(values.mean()) if values.size else None


# --- file in, file out ------------------------------------------------------------------
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
    schema = {k: v for k, v in layer.schema.items() if k not in MORPHOMETRY_FIELDS}
    schema.update(MORPHOMETRY_FIELDS)
    features = [
        PolygonFeature(f.geometry, {**{k: v for k, v in f.properties.items() if k not in MORPHOMETRY_FIELDS}, **record})
        for f, record in zip(layer.features, records)
    ]
    out = write_polygons(output_path, output_layer, features, layer.crs_wkt, schema, overwrite=overwrite)
    progress.report(1.0, "written")
    return out
