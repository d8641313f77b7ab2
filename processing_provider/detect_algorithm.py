"""`thawslump:detect`: the Processing front end of engine.detect.run_detection.

The engine does all the work; this module only translates Processing parameters into a
DetectionRequest, the feedback into a Progress, and result.features into the feature sink
(so any OGR format and TEMPORARY_OUTPUT work). The probability raster is written by the
engine straight to the PROBABILITY destination.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsProcessing,
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

from ..core.checkpoint import bundled_checkpoint_path
from ..core.devices import DEVICE_CHOICES
from ..core.file_names import DEFAULT_LAYER
from ..qgis_common.layer_adapters import qgis_attribute, qgis_fields, qgis_geometry
from .algorithm_base import (
    OVERWRITE,
    OVERWRITE_HELP,
    SafeVectorOutput,
    ThawSlumpAlgorithm,
    add_overwrite_parameter,
    call_engine,
    feedback_progress,
    load_on_completion,
    parse_vector_destination,
    raster_input,
)


def raster_crs_of(path: str) -> QgsCoordinateReferenceSystem:
    from ..engine.raster_source import open_raster

    with open_raster(path) as src:  # refuses unreadable rasters and rasters without a CRS in one line
        return QgsCoordinateReferenceSystem.fromWkt(src.crs.to_wkt())


class DetectAlgorithm(ThawSlumpAlgorithm):
    NAME = "detect"
    DISPLAY_NAME = "Detect thaw slumps"
    GROUP = "Detection"
    GROUP_ID = "detection"
    HELP = (
        "Finds retrogressive thaw slumps in an optical image with the DeepLabv3+ checkpoint "
        "(the bundled one unless another is chosen). The image is processed in overlapping, "
        "blended tiles at the checkpoint's ground sample distance; pixels whose slump "
        "probability reaches the threshold become polygons, and polygons smaller than the "
        "minimum area are dropped.\n\n"
        "BANDS: the raster band for each checkpoint band, e.g. 1,2,3 (empty: from the band "
        "colour tags, or RGB / PlanetScope B,G,R,NIR order). THRESHOLD and MIN_AREA left "
        "empty use the checkpoint's values.\n\n"
        "Outputs: polygons with id, mean and max score, area and perimeter in m2/m, the model "
        "and review fields (layer thaw_slumps unless the output names another); and the probability "
        "raster (default beside a file output, named after its layer)." + OVERWRITE_HELP
    )
    INPUT = "INPUT"
    CHECKPOINT = "CHECKPOINT"
    BANDS = "BANDS"
    EXTENT = "EXTENT"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    DEVICE = "DEVICE"
    OUTPUT = "OUTPUT"
    PROBABILITY = "PROBABILITY"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input image"))
        self.addParameter(
            QgsProcessingParameterFile(
                self.CHECKPOINT,
                "Checkpoint (.pt; the bundled model by default)",
                behavior=QgsProcessingParameterFile.File,
                extension="pt",
                defaultValue=str(bundled_checkpoint_path()),
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
            self.THRESHOLD,
            "Probability threshold (empty: the checkpoint's)",
            QgsProcessingParameterNumber.Double,
            optional=True,
            minValue=0.0,
            maxValue=1.0,
        )
        self.addParameter(threshold)
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MIN_AREA, "Minimum slump area in m2 (empty: the checkpoint's)", QgsProcessingParameterNumber.Double, optional=True, minValue=0.0
            )
        )
        self.addParameter(QgsProcessingParameterEnum(self.DEVICE, "Device", options=list(DEVICE_CHOICES), defaultValue=0))
        self.addParameter(
            QgsProcessingParameterFeatureSink(self.OUTPUT, "Thaw slumps", QgsProcessing.TypeVectorPolygon)
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(self.PROBABILITY, "Slump probability", optional=True, createByDefault=True)
        )
        add_overwrite_parameter(self)

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Any]:  # noqa: N802
        input_path, layer = raster_input(self, parameters, self.INPUT, context)
        if input_path is None:
            raise QgsProcessingException("Choose an input raster layer.")
        raster_crs = layer.crs() if layer is not None else call_engine(feedback, lambda: raster_crs_of(input_path))
        crs_wkt = raster_crs.toWkt()
        rect = None
        if parameters.get(self.EXTENT) not in (None, ""):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context, raster_crs)
        checkpoint_text = self.parameterAsFile(parameters, self.CHECKPOINT, context)
        device = DEVICE_CHOICES[self.parameterAsEnum(parameters, self.DEVICE, context)]
        probability_path = None
        if parameters.get(self.PROBABILITY) not in (None, ""):
            probability_path = self.parameterAsOutputLayer(parameters, self.PROBABILITY, context) or None
        bands_text = self.parameterAsString(parameters, self.BANDS, context)
        threshold = self._optional_number(parameters, self.THRESHOLD, context)
        min_area = self._optional_number(parameters, self.MIN_AREA, context)
        overwrite = self.parameterAsBool(parameters, OVERWRITE, context)
        destination_text = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)

        def detect():
            from ..engine.bands import parse_band_list
            from ..engine.detect import DetectionRequest, run_detection
            from ..engine.extent import Extent

            # A file output is written by the engine itself: checked before inference, staged,
            # and moved into place (or added to an existing GeoPackage) only when complete.
            destination = parse_vector_destination(destination_text, DEFAULT_LAYER)
            extent = None
            if rect is not None and not rect.isNull() and not rect.isEmpty():
                extent = Extent.from_bounds(rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum(), crs_wkt)
            request = DetectionRequest(
                input_path=Path(input_path), output_path=destination[0] if destination else None,
                probability_path=Path(probability_path) if probability_path else None,
                checkpoint_path=Path(checkpoint_text) if checkpoint_text else None,
                bands=parse_band_list(bands_text), extent=extent, threshold=threshold, min_area_m2=min_area, device=device,
                layer_name=destination[1] if destination else DEFAULT_LAYER, overwrite=overwrite,
                layer_named=destination[2] if destination else True,
            )
            return run_detection(request, feedback_progress(feedback))

        result = call_engine(feedback, detect)
        from ..engine.detect import DETECTION_SCHEMA

        for line in result.log:
            feedback.pushInfo(line)
        outputs: Dict[str, Any] = {}
        if result.output_path is not None:
            source = f"{result.output_path}|layername={result.layer_name}"
            load_on_completion(parameters, self.OUTPUT, context, source, result.layer_name)
            outputs[self.OUTPUT] = source
        else:
            fields = qgis_fields(dict(DETECTION_SCHEMA))
            result_crs = QgsCoordinateReferenceSystem.fromWkt(result.crs_wkt) if result.crs_wkt else raster_crs
            outputs[self.OUTPUT] = SafeVectorOutput(self, parameters, self.OUTPUT, context, DEFAULT_LAYER).write(
                fields, QgsWkbTypes.MultiPolygon, result_crs, self._features(result, fields), feedback
            )
        feedback.pushInfo(f"Device: {result.device_name} ({result.backend})")
        feedback.pushInfo(result.summary())
        if result.probability_path is not None and Path(result.probability_path).exists():
            outputs[self.PROBABILITY] = str(result.probability_path)
        return outputs

    @staticmethod
    def _features(result, fields):
        names = fields.names()
        for feature in result.features:
            qfeature = QgsFeature(fields)
            qfeature.setGeometry(qgis_geometry(feature.geometry))
            qfeature.setAttributes([qgis_attribute(feature.properties.get(name)) for name in names])
            yield qfeature

    def _optional_number(self, parameters, name: str, context) -> Optional[float]:
        if parameters.get(name) in (None, ""):
            return None
        return self.parameterAsDouble(parameters, name, context)

