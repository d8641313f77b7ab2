"""Outline clean-up after vectorising: fill small holes, close ragged pixel edges, drop slivers.

Works on the polygons, not the probability raster, so it needs no halo across the strips
the engine vectorises in, and it is the same whatever the tiling. Distances are in pixels
of the model's grid and converted with the layer's pixel size. Which steps run by default
was decided by instance F1 on cross-validated predictions (docs/TRAINING.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True)
class CleanupSettings:
    fill_holes_px: float = 0.0  # fill holes smaller than this many pixels (0: keep every hole)
    close_px: float = 0.0  # morphological closing radius: smooths staircase edges, joins near fragments
    open_px: float = 0.0  # morphological opening radius: removes slivers and one-pixel necks

    @property
    def active(self) -> bool:
        return self.fill_holes_px > 0 or self.close_px > 0 or self.open_px > 0


NO_CLEANUP = CleanupSettings()


def _polygons(geom: BaseGeometry) -> List[Polygon]:
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    if isinstance(geom, MultiPolygon):
        return list(geom.geoms)
    return [g for part in getattr(geom, "geoms", []) for g in _polygons(part)]


def fill_small_holes(polygon: Polygon, max_hole_area: float) -> Polygon:
    keep = [ring for ring in polygon.interiors if Polygon(ring).area >= max_hole_area]
    return Polygon(polygon.exterior, keep)


def clean_outlines(polygons: Sequence[BaseGeometry], pixel_size: float, settings: CleanupSettings) -> List[Polygon]:
    """Cleaned polygons (mitred buffers keep square corners square); may merge or split parts."""
    from shapely.ops import unary_union

    if not settings.active or not polygons:
        return [p for g in polygons for p in _polygons(g)]
    parts: List[Polygon] = [p for g in polygons for p in _polygons(g)]
    if settings.close_px > 0:
        r = settings.close_px * pixel_size
        merged = unary_union([p.buffer(r, join_style=2) for p in parts]).buffer(-r, join_style=2)
        parts = _polygons(merged)
    if settings.open_px > 0:
        r = settings.open_px * pixel_size
        parts = [q for p in parts for q in _polygons(p.buffer(-r, join_style=2).buffer(r, join_style=2))]
    if settings.fill_holes_px > 0:
        area = settings.fill_holes_px * pixel_size * pixel_size
        parts = [fill_small_holes(p, area) for p in parts]
    return [p for p in parts if not p.is_empty and p.area > 0]
