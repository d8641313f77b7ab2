"""The part of a raster to process: a bounding box or a polygon mask, in any CRS."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import shapely
from rasterio.crs import CRS
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from .vector_io import reproject_geometry


@dataclass(frozen=True)
class Extent:
    geometry: BaseGeometry
    crs_wkt: str
    is_box: bool

    @classmethod
    def from_bounds(cls, xmin: float, ymin: float, xmax: float, ymax: float, crs_wkt: str = "") -> "Extent":
        return cls(box(min(xmin, xmax), min(ymin, ymax), max(xmin, xmax), max(ymin, ymax)), crs_wkt, True)

    @classmethod
    def from_polygon(cls, geometry: BaseGeometry, crs_wkt: str = "") -> "Extent":
        return cls(shapely.make_valid(geometry), crs_wkt, False)

    def in_crs(self, crs: CRS) -> BaseGeometry:
        """The geometry in the raster's CRS (an extent without a CRS is taken as already in it)."""
        if not self.crs_wkt:
            return self.geometry
        geom = reproject_geometry(self.geometry, CRS.from_wkt(self.crs_wkt), crs)
        # A reprojected box is no longer axis-aligned; keep its polygon so nothing outside is processed.
        return geom


def parse_bbox(text: str, crs_wkt: str = "") -> Optional[Extent]:
    """'xmin,ymin,xmax,ymax' -> Extent; '' -> None."""
    from ..core.errors import UserError

    text = (text or "").strip()
    if not text:
        return None
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise UserError(f"An extent is four numbers xmin,ymin,xmax,ymax in the raster's CRS (got {text!r}).")
    return Extent.from_bounds(*values, crs_wkt=crs_wkt)
