"""The QGIS adapters the dock and the Processing algorithms share: a layer as the file the
engine reads, fiona schemas as QgsFields, engine values and shapely geometries as QGIS ones.

Written once here so ui/ and processing_provider/ never import each other. The errors are
QgsProcessingException, which Processing shows as it is and the dock turns into one line.
"""
from __future__ import annotations

import datetime as _dt
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from qgis.core import (
    QgsCoordinateTransformContext,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessingException,
    QgsProviderRegistry,
    QgsVectorFileWriter,
)
from qgis.PyQt.QtCore import QDateTime, QVariant


def raster_file_path(layer) -> str:
    """The file behind a GDAL raster layer; the engine streams files, not other providers."""
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"Layer {layer.name()} is not a file-based raster ({layer.providerType()}); save it as a GeoTIFF first."
        )
    path = QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path") or layer.source()
    if not Path(path).exists():
        raise QgsProcessingException(f"The file behind layer {layer.name()} was not found ({path}); save it as a GeoTIFF first.")
    return path


def layer_file(layer) -> Tuple[Optional[str], Optional[str]]:
    """(file, layer name) behind a file-based layer without copying it, else (None, None):
    what an output must not overwrite."""
    if layer is None or layer.providerType() not in ("ogr", "gdal"):
        return None, None
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    return parts.get("path") or None, parts.get("layerName") or None


def vector_layer_file(layer, feedback) -> Tuple[str, Optional[str]]:
    """(file, layer name) behind an OGR layer; any other layer (memory, database, filtered)
    is first saved to a temporary GeoPackage, because the analysis code reads files."""
    if layer.providerType() == "ogr" and not layer.subsetString():
        parts = QgsProviderRegistry.instance().decodeUri("ogr", layer.source())
        path = parts.get("path") or ""
        if path and Path(path).exists():
            return path, parts.get("layerName") or None
    folder = tempfile.mkdtemp(prefix="thawslump_")
    path = str(Path(folder) / "layer.gpkg")
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "layer"
    error, message, *_ = QgsVectorFileWriter.writeAsVectorFormatV2(layer, path, QgsCoordinateTransformContext(), options)
    if error != QgsVectorFileWriter.NoError:
        raise QgsProcessingException(f"Cannot copy layer {layer.name()} for reading ({message}); save it as a GeoPackage first.")
    feedback.pushInfo(f"Layer {layer.name()} copied to {path} for reading.")
    return path, "layer"


def qgis_fields(schema: Dict[str, str]) -> QgsFields:
    """fiona field types ('int', 'float', 'str:80', 'datetime') as QgsFields."""
    fields = QgsFields()
    for name, fiona_type in schema.items():
        kind, _, width = str(fiona_type).partition(":")
        if kind in ("int", "int64", "int32"):
            field = QgsField(name, QVariant.LongLong)
        elif kind == "float":
            field = QgsField(name, QVariant.Double)
        elif kind == "datetime":
            field = QgsField(name, QVariant.DateTime)
        elif kind == "date":
            field = QgsField(name, QVariant.Date)
        else:
            field = QgsField(name, QVariant.String, len=int(width) if width.isdigit() else 0)
        fields.append(field)
    return fields


def qgis_attribute(value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        return QDateTime(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def qgis_geometry(geometry) -> QgsGeometry:
    """A shapely polygon as a multipolygon QgsGeometry."""
    import shapely

    qgs = QgsGeometry()
    # output_dimension=2: inside QGIS the system GEOS may serve shapely's calls and rejects
    # the 4-dimension default of newer shapely releases.
    qgs.fromWkb(shapely.to_wkb(geometry, output_dimension=2))
    qgs.convertToMultiType()
    return qgs
