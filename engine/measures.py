"""True areas and perimeters in metres, whatever the layer's CRS.

Projected CRSs: planar measures scaled by the CRS's linear unit. Geographic CRSs: each
polygon is projected to a Lambert azimuthal equal-area CRS centred on it, which keeps
area exact on the ellipsoid and distorts lengths by less than 1e-6 over a few km.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import shapely
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform
from shapely.geometry.base import BaseGeometry


def crs_from_any(crs: "CRS | str | int") -> CRS:
    if isinstance(crs, CRS):
        return crs
    if isinstance(crs, int):
        return CRS.from_epsg(crs)
    return CRS.from_user_input(crs)


def metres_per_unit(crs: CRS) -> float:
    """Linear unit of a projected CRS in metres (1.0 for metres, 0.3048 for feet...)."""
    try:
        factor = crs.linear_units_factor[1]
        return float(factor) if factor else 1.0
    except Exception:  # rasterio raises CRSError for CRSs without a linear unit
        return 1.0


def local_equal_area_crs(lon: float, lat: float) -> CRS:
    return CRS.from_proj4(f"+proj=laea +lat_0={lat:.8f} +lon_0={lon:.8f} +datum=WGS84 +units=m +no_defs")


def to_local_metres(geom: BaseGeometry, crs: CRS) -> BaseGeometry:
    """The geometry in a CRS whose units are metres and whose areas are true."""
    if not crs.is_geographic:
        factor = metres_per_unit(crs)
        return geom if factor == 1.0 else shapely.transform(geom, lambda xy: xy * factor)
    centre = geom.centroid if not geom.is_empty else None
    if centre is None:
        return geom
    lon, lat = warp_transform(crs, CRS.from_epsg(4326), [centre.x], [centre.y])
    target = local_equal_area_crs(lon[0], lat[0])

    def project(xy: np.ndarray) -> np.ndarray:
        xs, ys = warp_transform(crs, target, xy[:, 0].tolist(), xy[:, 1].tolist())
        return np.column_stack([xs, ys])

    return shapely.transform(geom, project)


def true_area_perimeter(geom: BaseGeometry, crs: "CRS | str | int") -> Tuple[float, float]:
    """(area in m2, perimeter in m) of a polygon geometry; holes count in the perimeter."""
    crs = crs_from_any(crs)
    local = to_local_metres(geom, crs)
    return float(local.area), float(local.length)


