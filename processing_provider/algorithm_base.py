"""What every `thawslump:` algorithm shares: identity from class attributes, cancel support,
layers as the files the engine reads, feedback as the engine's Progress, engine errors as
Processing errors, and engine features as QGIS features.

Algorithm modules import the engine only inside processAlgorithm, so the provider loads (and
qgis_process lists it) cheaply and even where torch is missing.
"""
from __future__ import annotations

import datetime as _dt
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple, TypeVar

from qgis.core import (
    QgsCoordinateTransformContext,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProviderRegistry,
    QgsVectorFileWriter,
)
from qgis.PyQt.QtCore import QDateTime, QVariant

if TYPE_CHECKING:
    from ..engine.progress import Progress

T = TypeVar("T")


class ThawSlumpAlgorithm(QgsProcessingAlgorithm):
    """Subclasses set NAME, DISPLAY_NAME, GROUP, GROUP_ID and HELP, and write
    initAlgorithm and processAlgorithm."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = ""
    GROUP_ID = ""
    HELP = ""

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802 (QGIS's names)
        return self.DISPLAY_NAME

    def group(self) -> str:
        return self.GROUP

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP_ID

    def shortHelpString(self) -> str:  # noqa: N802
        # Shown beside the dialog's parameters and by `qgis_process help`.
        return f"{self.HELP}\n\nDocumentation: {self.helpUrl()}"

    def helpUrl(self) -> str:  # noqa: N802 (the dialog's Help button opens it)
        from .parameter_help import docs_url

        return docs_url(self.NAME)

    def addParameter(self, definition, createOutput: bool = True) -> bool:  # noqa: N802,N803
        """Every parameter's description gains its unit and default (parameter_help.py)."""
        from .parameter_help import described

        definition.setDescription(described(self.NAME, definition))
        return super().addParameter(definition, createOutput)

    def flags(self):
        return super().flags() | QgsProcessingAlgorithm.FlagCanCancel

    def createInstance(self) -> "ThawSlumpAlgorithm":  # noqa: N802
        return type(self)()


def feedback_progress(feedback) -> "Progress":
    """The engine's Progress, reporting to and cancelled from a Processing feedback."""
    from ..engine.progress import Progress

    def report(fraction: float, message: str) -> None:
        feedback.setProgress(100.0 * fraction)
        if message:
            feedback.setProgressText(message)

    return Progress(report, feedback.isCanceled)


def call_engine(feedback, work: Callable[[], T], cancelled_message: str = "Cancelled: nothing was written.") -> Optional[T]:
    """Run engine code: a UserError becomes a one-line QgsProcessingException, a missing
    package says where to install it, and a cancel returns None after telling the user."""
    try:
        from ..engine.errors import Cancelled, UserError
    except ImportError as err:  # pragma: no cover - the engine's own imports are light
        raise QgsProcessingException(f"The plugin is incomplete ({err}); reinstall it.") from None
    try:
        return work()
    except UserError as err:
        raise QgsProcessingException(str(err)) from None
    except Cancelled:
        feedback.reportError(cancelled_message)
        return None
    except ImportError as err:
        raise QgsProcessingException(
            f"A Python package the plugin needs is missing ({err}); open the Detect thaw slumps dock to install it."
        ) from None


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
