"""Reading and writing polygon layers in any OGR format, with the no-overwrite rule.

A layer a user has corrected must never be silently replaced, so writing into an existing
layer is refused unless the caller explicitly asks to overwrite.
"""
from __future__ import annotations

import math
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import fiona
import shapely
from fiona.errors import DriverError, FionaError
from rasterio.crs import CRS
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from ..core.errors import UserError
from .output_safety import StagedFile, VectorTarget, check_vector_output, reached, remove_quietly, temporary_name

DRIVERS_BY_SUFFIX = {  # what can be read; what may be written is output_safety.VECTOR_DRIVERS
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
    repaired: int = 0  # invalid polygons made valid on reading

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


POLYGON_TYPES = ("Polygon", "MultiPolygon")


def input_layer_name(path: Path | str, layer: Optional[str]) -> Optional[str]:
    """The layer a read will use: the one named, else the first of a multi-layer file (so an
    output into the same GeoPackage can be checked against it)."""
    if layer or Path(path).suffix.lower() not in (".gpkg", ".sqlite"):
        return layer
    layers = list_layers(path)
    return layers[0] if layers else None


def read_polygons(path: Path | str, layer: Optional[str] = None, repair: bool = True, what: str = "polygon layer") -> PolygonLayer:
    """All polygon features of a layer, checked: a layer holding points or lines is refused in
    one line (it would silently score or measure nothing), as are coordinates that cannot be
    in the layer's CRS. Null and empty geometries are skipped. ``repair`` makes invalid
    polygons valid and warns how many were repaired."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"The {what} {path} was not found.")
    if path.is_dir() and path.suffix.lower() not in (".gdb",):
        raise UserError(f"The {what} {path} is a folder; give a vector file such as a .gpkg.")
    if layer is not None:
        layers = list_layers(path)
        if layers and layer not in layers:
            raise UserError(f"{path.name} has no layer '{layer}' (it has: {', '.join(layers[:8])}).")
    try:
        with fiona.open(str(path), layer=layer) as src:
            crs_wkt = src.crs_wkt or ""
            schema = dict(src.schema.get("properties", {}))
            features: List[PolygonFeature] = []
            other_types: Dict[str, int] = {}
            repaired = 0
            for feat in src:
                if feat.geometry is None:
                    continue
                geom = shape(feat.geometry)
                if geom.is_empty:
                    continue
                if geom.geom_type not in POLYGON_TYPES:
                    other_types[geom.geom_type] = other_types.get(geom.geom_type, 0) + 1
                    continue
                if repair and not geom.is_valid:
                    geom = _polygon_part(shapely.make_valid(geom))
                    repaired += 1
                    if geom.is_empty:
                        continue
                features.append(PolygonFeature(geom, dict(feat.properties)))
    except (DriverError, FionaError, ValueError, OSError) as err:
        raise UserError(f"Cannot read {path.name} as a {what} ({_first_line(err)}).") from None
    name = path.name if layer is None else f"{path.name} (layer {layer})"
    if other_types:
        found = ", ".join(f"{n} {t}" for t, n in sorted(other_types.items()))
        raise UserError(f"The {what} {name} holds {found} geometries, not polygons; give a polygon layer.")
    _check_coordinates_fit_crs(features, crs_wkt, name)
    if repaired:
        warnings.warn(f"{name}: {repaired} invalid (e.g. self-intersecting) polygon(s) were repaired before use.", stacklevel=2)
    return PolygonLayer(features, crs_wkt, schema, path, layer, repaired)


def require_polygons(geometries: Sequence[BaseGeometry], name: str, allow_empty: bool = False) -> None:
    """The check read_polygons makes, for geometries that come from elsewhere (a QGIS layer)."""
    kinds: Dict[str, int] = {}
    for geom in geometries:
        if geom is not None and not geom.is_empty and geom.geom_type not in POLYGON_TYPES:
            kinds[geom.geom_type] = kinds.get(geom.geom_type, 0) + 1
    if kinds:
        found = ", ".join(f"{n} {t}" for t, n in sorted(kinds.items()))
        raise UserError(f"{name} holds {found} geometries, not polygons; give a polygon layer.")
    if not allow_empty and not any(g is not None and not g.is_empty for g in geometries):
        raise UserError(f"{name} holds no polygons; give a polygon layer with features.")


def _polygon_part(geom: BaseGeometry) -> BaseGeometry:
    if geom.geom_type in POLYGON_TYPES:
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in POLYGON_TYPES]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "Failed to open dataset" in text or "not recognized as" in text:
        return "GDAL does not recognise it as a vector file"
    return text if len(text) <= 120 else text[:117].rsplit(" ", 1)[0] + "..."


def _check_coordinates_fit_crs(features: Sequence[PolygonFeature], crs_wkt: str, name: str) -> None:
    """Degrees beyond +-360/+-90 (or non-finite numbers) mean the CRS label is wrong; PROJ would
    fail later with a traceback or quietly give nonsense."""
    if not features:
        return
    bounds = shapely.total_bounds([f.geometry for f in features])
    if not all(math.isfinite(v) for v in bounds):
        raise UserError(f"{name} has coordinates that are not finite numbers; repair the layer first.")
    if not crs_wkt:
        return
    try:
        crs = CRS.from_wkt(crs_wkt)
    except Exception:  # noqa: BLE001 - rasterio raises CRSError; any unreadable CRS is the user's to fix
        raise UserError(f"{name} has a coordinate reference system GDAL cannot read; assign a valid CRS.") from None
    xmin, ymin, xmax, ymax = bounds
    if crs.is_geographic and (xmin < -360 or xmax > 360 or ymin < -90.5 or ymax > 90.5):
        raise UserError(
            f"{name} is labelled with a geographic CRS but its coordinates ({xmin:.0f}, {ymin:.0f} ...) are not degrees; "
            "assign the layer its real CRS."
        )


def write_polygons(
    path: Path | str,
    layer: str,
    features: Sequence[PolygonFeature],
    crs_wkt: str,
    schema: Mapping[str, str],
    overwrite: bool = False,
    layer_named: bool = True,
    inputs: Sequence[tuple] = (),
) -> Path:
    """Write features as MultiPolygons, safely (engine/output_safety.py): refuses an existing
    layer unless ``overwrite``, writes to a temporary file first and moves or copies it in
    atomically, so an old layer and every other layer of the file survive any failure."""
    target = check_vector_output(path, layer, inputs, overwrite, layer_named, field_names=list(schema))
    staged = StagedLayer(target)
    try:
        staged.write(features, crs_wkt, schema)
        return staged.commit()
    finally:
        staged.discard()


class StagedLayer:
    """A checked polygon output written to a temporary GeoPackage/file, committed on demand."""

    def __init__(self, target: VectorTarget) -> None:
        self.target = target
        # <temporary folder>/<layer>.<suffix>: a writer that names the layer after the file
        # (QGIS's feature sinks) then gives it the right name too.
        self.folder = temporary_name(target.path.with_suffix(""))
        self.folder.mkdir(parents=True)
        self.temp = self.folder / (_file_safe(target.layer) + target.path.suffix)
        self.done = False

    def write(self, features: Sequence[PolygonFeature], crs_wkt: str, schema: Mapping[str, str]) -> None:
        fiona_schema = {"geometry": "MultiPolygon", "properties": dict(schema)}
        layer = self.target.layer if self.target.driver == "GPKG" else None
        if self.target.driver == "ESRI Shapefile":
            _refuse_long_text(features, self.target.path)
        try:
            with fiona.open(str(self.temp), "w", driver=self.target.driver, layer=layer, schema=fiona_schema, crs_wkt=crs_wkt) as dst:
                dst.writerecords(
                    {
                        "geometry": mapping(_as_multipolygon(f.geometry)),
                        "properties": {k: f.properties.get(k) for k in schema},
                    }
                    for f in features
                )
        except (DriverError, FionaError, OSError, ValueError) as err:
            raise UserError(f"Cannot write {self.target.path.name} ({_first_line(err)}); check the folder and the file name.") from None
        reached("writing")

    def commit(self) -> Path:
        target = self.target
        if target.driver == "GPKG" and target.path.exists() and not target.replace_file:
            copy_layer_into_geopackage(self.temp, target.path, target.layer, target.overwrite)
        elif target.driver == "ESRI Shapefile":
            # Several files: the .dbf, .shx, .prj ... go first, the .shp that names the layer last.
            parts = sorted(self.temp.parent.glob(self.temp.stem + ".*"), key=lambda p: p.suffix.lower() == ".shp")
            for part in parts:
                staged = StagedFile(target.path.with_suffix(part.suffix), overwrite=target.overwrite)
                staged.temp = part
                staged.commit()
        else:
            staged = StagedFile(target.path, overwrite=target.overwrite)
            staged.temp = self.temp
            staged.commit()
        self.done = True
        remove_quietly(self.folder)
        return target.path

    def discard(self) -> None:
        remove_quietly(self.folder)


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name).strip(".") or "layer"


def _refuse_long_text(features: Sequence[PolygonFeature], path: Path) -> None:
    from .output_safety import SHAPEFILE_REFUSAL, SHAPEFILE_TEXT_LIMIT

    for feature in features:
        for name, value in feature.properties.items():
            if isinstance(value, str) and len(value.encode("utf-8")) > SHAPEFILE_TEXT_LIMIT:
                raise UserError(f"Cannot write {path.name}: field {name} holds longer text; {SHAPEFILE_REFUSAL}; write a .gpkg instead.")


def _as_multipolygon(geom: BaseGeometry) -> BaseGeometry:
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    if geom.geom_type == "GeometryCollection":
        return shapely.MultiPolygon([g for g in geom.geoms if g.geom_type == "Polygon"])
    return geom


def _copy_features(source_layer, target, name: str) -> None:
    from osgeo import gdal, ogr

    if source_layer is None:
        raise UserError("The temporary layer could not be read back; nothing was changed.")
    copied = target.CreateLayer(name, srs=source_layer.GetSpatialRef(), geom_type=source_layer.GetGeomType(), options=["GEOMETRY_NAME=geom"])
    if copied is None:
        raise UserError(f"Cannot add a layer to the GeoPackage ({gdal.GetLastErrorMsg()}).")
    definition = source_layer.GetLayerDefn()
    for i in range(definition.GetFieldCount()):
        copied.CreateField(definition.GetFieldDefn(i))
    out_definition = copied.GetLayerDefn()
    for feature in source_layer:
        out = ogr.Feature(out_definition)
        out.SetFrom(feature)
        if copied.CreateFeature(out) != 0:
            raise UserError(f"Cannot write a feature into the GeoPackage ({gdal.GetLastErrorMsg()}).")


def _gdal_bindings(target_gpkg: Path) -> tuple:
    """GDAL's own Python bindings: the only way here to change a GeoPackage inside one SQLite
    transaction. QGIS and Debian's python3-gdal ship them; pip-only environments lack them."""
    try:
        from osgeo import gdal, ogr
    except ImportError:
        raise UserError(
            f"Adding a layer to the existing {target_gpkg.name} needs GDAL's Python bindings (python3-gdal, part of QGIS); "
            "run this in QGIS or install python3-gdal, or write to a new .gpkg file."
        ) from None
    return gdal, ogr


def copy_layer_into_geopackage(source_gpkg: Path, target_gpkg: Path, layer: str, replace: bool) -> None:
    """Copy ``layer`` from a finished temporary GeoPackage into an existing one, in one SQLite
    transaction: other layers are never touched, and a replaced layer is swapped only at commit
    (a kill before then leaves the file as it was). The file is changed in place, so QGIS
    sessions holding it open keep seeing it."""
    gdal, ogr = _gdal_bindings(target_gpkg)
    staged_name = "tsm_partial_" + uuid.uuid4().hex[:12]
    source = ogr.Open(str(source_gpkg))
    target = gdal.OpenEx(str(target_gpkg), gdal.OF_VECTOR | gdal.OF_UPDATE, allowed_drivers=["GPKG"])
    if source is None or target is None:
        raise UserError(f"Cannot open {target_gpkg.name} for writing ({gdal.GetLastErrorMsg() or 'not a GeoPackage'}).")
    if target.StartTransaction() != 0:
        raise UserError(f"Cannot write {target_gpkg.name}: another program holds it locked; close it there and retry.")
    try:
        # Feature by feature inside our transaction (CopyLayer would open a second one).
        _copy_features(source.GetLayerByName(layer) or source.GetLayer(0), target, staged_name)
        names = [target.GetLayer(i).GetName() for i in range(target.GetLayerCount())]
        if layer in names:
            if not replace:
                raise UserError(f"{target_gpkg.name} gained a layer '{layer}' while this run was working; it was left alone.")
            if target.DeleteLayer(names.index(layer)) != 0:
                raise UserError(f"Cannot replace layer {layer} in {target_gpkg.name} ({gdal.GetLastErrorMsg()}).")
        reached("committing")
        if target.GetLayerByName(staged_name).Rename(layer) != 0 or target.CommitTransaction() != 0:
            raise UserError(f"Cannot write layer {layer} into {target_gpkg.name} ({gdal.GetLastErrorMsg()}).")
    except BaseException:
        target.RollbackTransaction()
        raise
    finally:
        target = source = None  # noqa: F841 - closes both datasets


def reproject_geometry(geom: BaseGeometry, src_crs: "CRS | str", dst_crs: "CRS | str") -> BaseGeometry:
    """The geometry in ``dst_crs`` (no-op when both CRSs are the same)."""
    from rasterio.warp import transform_geom

    src = src_crs if isinstance(src_crs, CRS) else CRS.from_user_input(src_crs)
    dst = dst_crs if isinstance(dst_crs, CRS) else CRS.from_user_input(dst_crs)
    if src == dst:
        return geom
    try:
        out = shape(transform_geom(src, dst, mapping(geom)))
    except Exception as err:  # noqa: BLE001 - PROJ/GDAL errors of any class become one line
        raise UserError(
            f"Cannot reproject a geometry between the layers' CRSs ({_first_line(err)}); check that each layer has its real CRS."
        ) from None
    if out.is_empty != geom.is_empty or (not out.is_empty and not all(math.isfinite(v) for v in out.bounds)):
        raise UserError("A geometry does not reproject between the layers' CRSs (its coordinates do not fit its CRS); check each layer's CRS.")
    return out
