"""`thawslump:detect`: the Processing front end of engine.detect.run_detection.

The engine does all the work; this module only translates Processing parameters into a
DetectionRequest, the feedback into a Progress, and result.features into the feature sink
(so any OGR format and TEMPORARY_OUTPUT work). The probability raster is written by the
engine straight to the PROBABILITY destination.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QDateTime, QVariant

DEVICES = ("auto", "cpu", "cuda")


def bundled_checkpoint() -> str:
    # model/checkpoint.py imports torch only inside functions, so this is cheap.
    from ..model.checkpoint import bundled_checkpoint_path

    return str(bundled_checkpoint_path())


def qgis_fields(schema: Dict[str, str]) -> QgsFields:
    """DETECTION_SCHEMA's fiona types ('int', 'float', 'str:80', 'datetime') as QgsFields."""
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
    import datetime as _dt

    if isinstance(value, _dt.datetime):
        return QDateTime(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


class DetectAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    CHECKPOINT = "CHECKPOINT"
    BANDS = "BANDS"
    EXTENT = "EXTENT"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    DEVICE = "DEVICE"
    OUTPUT = "OUTPUT"
    PROBABILITY = "PROBABILITY"

    def name(self) -> str:
        return "detect"

    def displayName(self) -> str:  # noqa: N802
        return "Detect thaw slumps"

    def group(self) -> str:
        return "Detection"

    def groupId(self) -> str:  # noqa: N802
        return "detection"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Finds retrogressive thaw slumps in an optical image with the DeepLabv3+ checkpoint "
            "(the bundled one unless another is chosen). The image is processed in overlapping, "
            "blended tiles at the checkpoint's ground sample distance; pixels whose slump "
            "probability reaches the threshold become polygons, and polygons smaller than the "
            "minimum area are dropped.\n\n"
            "BANDS: the raster band for each checkpoint band, e.g. 1,2,3 (empty: from the band "
            "colour tags, or RGB / PlanetScope B,G,R,NIR order). THRESHOLD and MIN_AREA left "
            "empty use the checkpoint's values.\n\n"
            "Outputs: polygons with id, mean and max score, area and perimeter in m2/m, the model "
            "and review fields; and the probability raster."
        )

    def flags(self):
        return super().flags() | QgsProcessingAlgorithm.FlagCanCancel

    def createInstance(self) -> "DetectAlgorithm":  # noqa: N802
        return DetectAlgorithm()

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input image"))
        self.addParameter(
            QgsProcessingParameterFile(
                self.CHECKPOINT,
                "Checkpoint (.pt; the bundled model by default)",
                behavior=QgsProcessingParameterFile.File,
                extension="pt",
                defaultValue=bundled_checkpoint(),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.BANDS, "Raster band per checkpoint band, e.g. 1,2,3 (empty: automatic)", defaultValue="", optional=True
            )
        )
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, "Extent (empty: the whole image)", optional=True))
        threshold = QgsProcessingParameterNumber(
            self.THRESHOLD, "Probability threshold (empty: the checkpoint's)", QgsProcessingParameterNumber.Double, optional=True, minValue=0.0, maxValue=1.0
        )
        self.addParameter(threshold)
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MIN_AREA, "Minimum slump area in m2 (empty: the checkpoint's)", QgsProcessingParameterNumber.Double, optional=True, minValue=0.0
            )
        )
        self.addParameter(QgsProcessingParameterEnum(self.DEVICE, "Device", options=list(DEVICES), defaultValue=0))
        self.addParameter(
            QgsProcessingParameterFeatureSink(self.OUTPUT, "Thaw slumps", QgsProcessing.TypeVectorPolygon)
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(self.PROBABILITY, "Slump probability", optional=True, createByDefault=True)
        )

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Any]:  # noqa: N802
        # Imported here so the provider loads (and lists this algorithm) even without torch.
        try:
            from ..engine.detect import DETECTION_SCHEMA, DetectionRequest, run_detection
            from ..engine.errors import Cancelled, UserError
            from ..engine.extent import Extent
            from ..engine.progress import Progress
        except ImportError as err:
            raise QgsProcessingException(
                f"A Python package the detection needs is missing ({err}); open the Detect thaw slumps dock to install it."
            ) from None

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("Choose an input raster layer.")
        input_path = raster_file_path(layer)
        crs_wkt = layer.crs().toWkt()

        extent = None
        if parameters.get(self.EXTENT) not in (None, ""):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
            if not rect.isNull() and not rect.isEmpty():
                extent = Extent.from_bounds(rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum(), crs_wkt)

        checkpoint_text = self.parameterAsFile(parameters, self.CHECKPOINT, context)
        device = DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)]
        probability_path = None
        if parameters.get(self.PROBABILITY) not in (None, ""):
            probability_path = self.parameterAsOutputLayer(parameters, self.PROBABILITY, context) or None

        try:
            from ..engine.bands import parse_band_list

            request = DetectionRequest(
                input_path=Path(input_path),
                output_path=None,
                probability_path=Path(probability_path) if probability_path else None,
                checkpoint_path=Path(checkpoint_text) if checkpoint_text else None,
                bands=parse_band_list(self.parameterAsString(parameters, self.BANDS, context)),
                extent=extent,
                threshold=self._optional_number(parameters, self.THRESHOLD, context),
                min_area_m2=self._optional_number(parameters, self.MIN_AREA, context),
                device=device,
            )
            progress = Progress(
                callback=lambda fraction, message: _report(feedback, fraction, message),
                is_cancelled=feedback.isCanceled,
            )
            result = run_detection(request, progress)
        except UserError as err:
            raise QgsProcessingException(str(err)) from None
        except Cancelled:
            feedback.reportError("Cancelled: nothing was written.")
            return {}

        feedback.pushInfo(f"Model: {result.checkpoint_summary}")
        feedback.pushInfo(f"Device: {result.device_name}")
        fields = qgis_fields(dict(DETECTION_SCHEMA))
        from qgis.core import QgsCoordinateReferenceSystem

        result_crs = QgsCoordinateReferenceSystem.fromWkt(result.crs_wkt) if result.crs_wkt else layer.crs()
        sink, dest_id = self.parameterAsSink(parameters, self.OUTPUT, context, fields, QgsWkbTypes.MultiPolygon, result_crs)
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        import shapely

        names = fields.names()
        for feature in result.features:
            if feedback.isCanceled():
                break
            qfeature = QgsFeature(fields)
            geometry = QgsGeometry()
            # output_dimension=2: inside QGIS the system GEOS 3.11 may serve shapely's calls,
            # and it rejects shapely 2.1+'s default of 4 dimensions.
            geometry.fromWkb(shapely.to_wkb(feature.geometry, output_dimension=2))
            geometry.convertToMultiType()
            qfeature.setGeometry(geometry)
            qfeature.setAttributes([qgis_attribute(feature.properties.get(name)) for name in names])
            sink.addFeature(qfeature, QgsFeatureSink.FastInsert)
        feedback.pushInfo(f"{result.n_slumps} thaw slumps, {result.total_area_m2 / 10000:.2f} ha in {result.elapsed_s:.1f} s")
        outputs: Dict[str, Any] = {self.OUTPUT: dest_id}
        if result.probability_path is not None and Path(result.probability_path).exists():
            outputs[self.PROBABILITY] = str(result.probability_path)
        return outputs

    def _optional_number(self, parameters, name: str, context) -> Optional[float]:
        if parameters.get(name) in (None, ""):
            return None
        return self.parameterAsDouble(parameters, name, context)


def _report(feedback, fraction: float, message: str) -> None:
    feedback.setProgress(100.0 * fraction)
    if message:
        feedback.setProgressText(message)


def raster_file_path(layer) -> str:
    """The file behind a GDAL raster layer; other providers cannot be streamed by the engine."""
    from qgis.core import QgsProviderRegistry

    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"Layer {layer.name()} is not a file-based raster ({layer.providerType()}); save it as a GeoTIFF first."
        )
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = parts.get("path") or layer.source()
    if not Path(path).exists():
        raise QgsProcessingException(f"The file behind layer {layer.name()} was not found ({path}); save it as a GeoTIFF first.")
    return path
