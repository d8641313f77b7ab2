"""`thawslump:evaluate`: the Processing front end of analysis.evaluation.evaluate_layers."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from qgis.core import (
    QgsCoordinateTransformContext,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorLayer,
    QgsProviderRegistry,
    QgsVectorFileWriter,
    QgsVectorLayer,
)


def vector_layer_file(layer: QgsVectorLayer, feedback) -> Tuple[str, Optional[str]]:
    """(file, layer name) behind an OGR layer; any other layer (memory, database) is first
    saved to a temporary GeoPackage, because the analysis code reads files."""
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


class EvaluateAlgorithm(QgsProcessingAlgorithm):
    DETECTIONS = "DETECTIONS"
    REFERENCE = "REFERENCE"
    IOU_THRESHOLD = "IOU_THRESHOLD"
    OUTPUT = "OUTPUT"
    OUTPUT_LAYER = "OUTPUT_LAYER"
    NUMBER_OUTPUTS = ("TP", "FP", "FN", "PRECISION", "RECALL", "F1", "PIXEL_IOU", "AP_IOU_SWEEP")

    def name(self) -> str:
        return "evaluate"

    def displayName(self) -> str:  # noqa: N802
        return "Evaluate thaw slump polygons against a reference"

    def group(self) -> str:
        return "Review and training"

    def groupId(self) -> str:  # noqa: N802
        return "review"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Scores a polygon layer (for example detections) against reference polygons.\n\n"
            "Paper rule (Huang et al. 2020): a detection is a true positive when its largest IoU with "
            "any reference exceeds the threshold; a reference is a false negative when its largest IoU "
            "with any detection is below it. Also one-to-one matching (each reference used once), pixel "
            "IoU of the two unions, AP over the IoU sweep 1.0 to 0 in steps of 0.04, and score-ranked AP "
            "when the detections have score_mean.\n\n"
            "The reference is reprojected to the detections' CRS; invalid geometries are repaired and "
            "counted. OUTPUT is a JSON summary; OUTPUT_LAYER (optional GeoPackage) gets the detections "
            "with match (TP/FP), iou and ref_id, and the missed references."
        )

    def flags(self):
        return super().flags() | QgsProcessingAlgorithm.FlagCanCancel

    def createInstance(self) -> "EvaluateAlgorithm":  # noqa: N802
        return EvaluateAlgorithm()

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterVectorLayer(self.DETECTIONS, "Detections", [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterVectorLayer(self.REFERENCE, "Reference polygons", [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.IOU_THRESHOLD, "IoU a true positive must exceed", QgsProcessingParameterNumber.Double,
                defaultValue=0.5, minValue=0.0, maxValue=0.99,
            )
        )
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Summary (JSON)", "JSON files (*.json)"))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_LAYER, "Matched detections and missed references (GeoPackage)", "GeoPackage (*.gpkg)",
                optional=True, createByDefault=False,
            )
        )
        for name in self.NUMBER_OUTPUTS:
            self.addOutput(QgsProcessingOutputNumber(name, name.replace("_", " ").lower()))

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Any]:  # noqa: N802
        from ..analysis.evaluation import evaluate_layers
        from ..engine.errors import Cancelled, UserError
        from ..engine.progress import Progress

        detections = self.parameterAsVectorLayer(parameters, self.DETECTIONS, context)
        reference = self.parameterAsVectorLayer(parameters, self.REFERENCE, context)
        if detections is None or reference is None:
            raise QgsProcessingException("Choose a detection layer and a reference layer.")
        det_path, det_layer = vector_layer_file(detections, feedback)
        ref_path, ref_layer = vector_layer_file(reference, feedback)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        layer_output = self.parameterAsFileOutput(parameters, self.OUTPUT_LAYER, context) or None
        progress = Progress(
            callback=lambda fraction, message: _report(feedback, fraction, message), is_cancelled=feedback.isCanceled
        )
        try:
            summary = evaluate_layers(
                det_path, ref_path, output, layer_output,
                self.parameterAsDouble(parameters, self.IOU_THRESHOLD, context),
                det_layer=det_layer, ref_layer=ref_layer, progress=progress,
            )
        except UserError as err:
            raise QgsProcessingException(str(err)) from None
        except Cancelled:
            feedback.reportError("Cancelled.")
            return {}
        paper = summary["paper"]
        feedback.pushInfo(
            f"Paper rule: TP {paper['tp']}, FP {paper['fp']}, FN {paper['fn']}, precision {paper['precision']:.3f}, "
            f"recall {paper['recall']:.3f}, F1 {paper['f1']:.3f}; pixel IoU {summary['pixel_iou']:.3f}; "
            f"AP (IoU sweep) {summary['ap_iou_sweep']:.3f}"
        )
        results: Dict[str, Any] = {self.OUTPUT: output}
        if layer_output:
            results[self.OUTPUT_LAYER] = layer_output
        for name in ("TP", "FP", "FN", "PRECISION", "RECALL", "F1"):
            results[name] = paper[name.lower()]
        results["PIXEL_IOU"] = summary["pixel_iou"]
        results["AP_IOU_SWEEP"] = summary["ap_iou_sweep"]
        return results


def _report(feedback, fraction: float, message: str) -> None:
    feedback.setProgress(100.0 * fraction)
    if message:
        feedback.setProgressText(message)
