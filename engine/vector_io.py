"""Reading and writing polygon layers in any OGR format, with the no-overwrite rule.

A layer a user has corrected must never be silently replaced, so writing into an existing
layer is refused unless the caller explicitly asks to overwrite.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import fiona
import shapely
from fiona.errors import DriverError, FionaError
from rasterio.crs import CRS
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from .errors import UserError

DRIVERS_BY_SUFFIX = {
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".fgb": "FlatGeobuf",
    ".gml": "GML",
    ".kml": "KML",
    ".sqlite": "SQLite",
}


@dataclass
class PolygonFeature:
    geometry: BaseGeometry
    properties: Dict[str, Any] = field(default_factory=dict)


@dataclass
class PolygonLayer:
    features: List[PolygonFeature]
    crs_wkt: str
    schema: Dict[str, str]
    path: Path
    layer: Optional[str]

    @property
    def crs(self) -> Optional[CRS]:
        return CRS.from_wkt(self.crs_wkt) if self.crs_wkt else None


def driver_for(path: Path) -> str:
    driver = DRIVERS_BY_SUFFIX.get(Path(path).suffix.lower())
    if driver is None:
        raise UserError(f"Cannot tell the vector format of {Path(path).name}; use .gpkg, .shp, .geojson or .fgb.")
    return driver


def list_layers(path: Path | str) -> List[str]:
    try:
        return list(fiona.listlayers(str(path)))
    except (DriverError, FionaError, OSError, ValueError):
        return []


def layer_exists(path: Path | str, layer: str) -> bool:
    return Path(path).exists() and layer in list_layers(path)


def read_polygons(path: Path | str, layer: Optional[str] = None, repair: bool = True) -> PolygonLayer:
    """All polygon features of a layer; non-polygon and empty geometries are skipped."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"Polygon layer not found: {path}.")
    try:
        with fiona.open(str(path), layer=layer) as src:
            crs_wkt = src.crs_wkt or ""
            schema = dict(src.schema.get("properties", {}))
            features: List[PolygonFeature] = []
            for feat in src:
                if feat.geometry is None:
                    continue
                geom = shape(feat.geometry)
                if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
                    continue
                if repair and not geom.is_valid:
                    geom = shapely.make_valid(geom)
                features.append(PolygonFeature(geom, dict(feat.properties)))
    except (DriverError, FionaError, ValueError) as err:
        raise UserError(f"Cannot read {path.name} as a polygon layer ({str(err).splitlines()[0][:100]}).") from None
    return PolygonLayer(features, crs_wkt, schema, path, layer)


def write_polygons(
    path: Path | str,
    layer: str,
    features: Sequence[PolygonFeature],
    crs_wkt: str,
    schema: Mapping[str, str],
    overwrite: bool = False,
) -> Path:
    """Write features as MultiPolygons; refuses to replace an existing layer or file."""
    path = Path(path)
    driver = driver_for(path)
    if path.exists():
        multi_layer = driver in ("GPKG", "SQLite")
        exists = layer_exists(path, layer) if multi_layer else True
        if exists and not overwrite:
            raise UserError(
                f"{path.name} already holds a layer '{layer}'; choose another output file or layer name, "
                "or ask to overwrite explicitly (a corrected layer is never replaced silently)."
            )
        if exists:
            if multi_layer and len(list_layers(path)) > 1:
                fiona.remove(str(path), layer=layer, driver=driver)
            else:
                fiona.remove(str(path), driver=driver)
    if not path.parent.exists() or not _writable(path.parent):
        raise UserError(f"Cannot write to {path.parent}; choose a folder you can write to.")
    fiona_schema = {"geometry": "MultiPolygon", "properties": dict(schema)}
    try:
        with fiona.open(str(path), "w", driver=driver, layer=layer, schema=fiona_schema, crs_wkt=crs_wkt) as dst:
            dst.writerecords(
                {
                    "geometry": mapping(_as_multipolygon(f.geometry)),
                    "properties": {k: f.properties.get(k) for k in schema},
                }
                for f in features
            )
    except (DriverError, FionaError, OSError) as err:
        raise UserError(f"Cannot write {path.name} ({str(err).splitlines()[0][:100]}); check the folder and the file name.") from None
    return path


def _as_multipolygon(geom: BaseGeometry) -> BaseGeometry:
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    if geom.geom_type == "GeometryCollection":
        return shapely.MultiPolygon([g for g in geom.geoms if g.geom_type == "Polygon"])
    return geom


def _writable(folder: Path) -> bool:
    import os

    return os.access(folder, os.W_OK)


def reproject_geometry(geom: BaseGeometry, src_crs: "CRS | str", dst_crs: "CRS | str") -> BaseGeometry:
    """The geometry in ``dst_crs`` (no-op when both CRSs are the same)."""
    from rasterio.warp import transform_geom

    src = src_crs if isinstance(src_crs, CRS) else CRS.from_user_input(src_crs)
    dst = dst_crs if isinstance(dst_crs, CRS) else CRS.from_user_input(dst_crs)
    if src == dst:
        return geom
    return shape(transform_geom(src, dst, mapping(geom)))
