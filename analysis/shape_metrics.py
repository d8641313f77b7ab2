"""Shape attributes of one slump polygon, in true metres whatever the layer's CRS.

Area and perimeter come from engine.measures (the same function detection uses), so the
`area_m2` and `perimeter_m` written by detection and by morphometry always agree. The other
measures are planar in that same metric frame (the layer's CRS scaled to metres, or a local
Lambert azimuthal equal-area CRS centred on the polygon for geographic layers).
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np
import shapely
from rasterio.crs import CRS
from shapely.geometry.base import BaseGeometry

from ..engine.measures import crs_from_any, to_local_metres, true_area_perimeter

# name -> fiona type, in the order the fields are written
SHAPE_FIELDS: Dict[str, str] = {
    "area_m2": "float",
    "area_ha": "float",
    "perimeter_m": "float",
    "circularity": "float",
    "length_m": "float",
    "width_m": "float",
    "elongation": "float",
    "orientation_deg": "float",
    "solidity": "float",
    "n_holes": "int",
}


def count_holes(geom: BaseGeometry) -> int:
    parts = getattr(geom, "geoms", [geom])
    return int(sum(len(p.interiors) for p in parts if p.geom_type == "Polygon"))


def rectangle_axes(local: BaseGeometry) -> tuple[float, float, Optional[float]]:
    """(length, width, azimuth of the long side in degrees 0..180 clockwise from north)
    of the minimum rotated rectangle of a geometry in metric coordinates.

    Rotating calipers in numpy: the minimum-area rectangle has a side on an edge of the
    convex hull (Freeman & Shapira 1975), so every hull edge's direction is tried at once.
    Same rectangle as shapely.minimum_rotated_rectangle, whose GEOS < 3.12 fallback is pure
    Python and took 11 ms a polygon (most of the benchmark's time); this takes ~0.1 ms.
    """
    hull = local.convex_hull
    if hull.geom_type != "Polygon":  # degenerate (a line or a point)
        return float(hull.length), 0.0, None
    xy = shapely.get_coordinates(hull.exterior)
    xy = xy - xy.mean(axis=0)  # centred: no cancellation with large projected coordinates
    edges = np.diff(xy, axis=0)
    edge_lengths = np.hypot(edges[:, 0], edges[:, 1])
    edges = edges[edge_lengths > 0]
    u = edges / np.hypot(edges[:, 0], edges[:, 1])[:, None]  # along each edge
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)  # across it
    along, across = xy @ u.T, xy @ v.T  # (points x edges)
    extent_u = along.max(axis=0) - along.min(axis=0)
    extent_v = across.max(axis=0) - across.min(axis=0)
    best = int(np.argmin(extent_u * extent_v))
    if extent_u[best] >= extent_v[best]:
        long_side, length, width = u[best], extent_u[best], extent_v[best]
    else:
        long_side, length, width = v[best], extent_v[best], extent_u[best]
    # Azimuth: clockwise from grid north; an axis has no sense, so fold into [0, 180).
    azimuth = math.degrees(math.atan2(long_side[0], long_side[1])) % 180.0
    if azimuth >= 180.0 - 1e-9:
        azimuth = 0.0
    return float(length), float(width), azimuth


def shape_metrics(geom: BaseGeometry, crs: "CRS | str | int") -> Dict[str, Optional[float]]:
    """All SHAPE_FIELDS of one polygon or multipolygon."""
    crs = crs_from_any(crs)
    area, perimeter = true_area_perimeter(geom, crs)
    local = to_local_metres(geom, crs)
    length, width, azimuth = rectangle_axes(local)
    hull_area = local.convex_hull.area
    return {
        "area_m2": area,
        "area_ha": area / 10_000.0,
        "perimeter_m": perimeter,
        "circularity": 4.0 * math.pi * area / perimeter**2 if perimeter > 0 else None,
        "length_m": length,
        "width_m": width,
        "elongation": length / width if width > 0 else None,
        "orientation_deg": azimuth,
        # planar ratio in the same local metric frame, so the CRS cannot bias it
        "solidity": local.area / hull_area if hull_area > 0 else None,
        "n_holes": count_holes(geom),
    }
