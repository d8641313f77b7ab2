"""`thawslump:evaluate`: the Processing front end of analysis.evaluation.evaluate_layers."""
from __future__ import annotations

from typing import Any, Dict, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorLayer,
)

from ..qgis_common.layer_adapters import vector_layer_file
from .algorithm_base import (
    OVERWRITE,
    OVERWRITE_HELP,
    ThawSlumpAlgorithm,
    add_overwrite_parameter,
    call_engine,
    feedback_progress,
)


class EvaluateAlgorithm(ThawSlumpAlgorithm):
    NAME = "evaluate"
    DISPLAY_NAME = "Evaluate thaw slump polygons against a reference"
    GROUP = "Review and training"
    GROUP_ID = "review"
    HELP = (
        "Scores a polygon layer (for example detections) against reference polygons.\n\n"
        "Paper rule (Huang et al. 2020): a detection is a true positive when its largest IoU with "
        "any reference exceeds the threshold; a reference is a false negative when its largest IoU "
        "with any detection is below it. Also one-to-one matching (each reference used once), pixel "
        "IoU of the two unions, AP over the IoU sweep 1.0 to 0 in steps of 0.04, and score-ranked AP "
        "when the detections have score_mean.\n\n"
        "The reference is reprojected to the detections' CRS; invalid geometries are repaired and "
        "counted. OUTPUT is a JSON summary; OUTPUT_LAYER (optional GeoPackage) gets the detections "
        "with match (TP/FP), iou and ref_id, and the missed references (both layers are replaced on a rerun; "
        "other layers of that GeoPackage are kept). Layers of points or lines are refused." + OVERWRITE_HELP
    )
    DETECTIONS = "DETECTIONS"
    REFERENCE = "REFERENCE"
    IOU_THRESHOLD = "IOU_THRESHOLD"
    OUTPUT = "OUTPUT"
    OUTPUT_LAYER = "OUTPUT_LAYER"
    NUMBER_OUTPUTS = ("TP", "FP", "FN", "PRECISION", "RECALL", "F1", "PIXEL_IOU", "AP_IOU_SWEEP")

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
        add_overwrite_parameter(self)
        for name in self.NUMBER_OUTPUTS:
            self.addOutput(QgsProcessingOutputNumber(name, name.replace("_", " ").lower()))

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Any]:  # noqa: N802
        detections = self.parameterAsVectorLayer(parameters, self.DETECTIONS, context)
        reference = self.parameterAsVectorLayer(parameters, self.REFERENCE, context)
        if detections is None or reference is None:
            raise QgsProcessingException("Choose a detection layer and a reference layer.")
        det_path, det_layer = vector_layer_file(detections, feedback)
        ref_path, ref_layer = vector_layer_file(reference, feedback)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        layer_output = self.parameterAsFileOutput(parameters, self.OUTPUT_LAYER, context) or None
        iou_threshold = self.parameterAsDouble(parameters, self.IOU_THRESHOLD, context)
        overwrite = self.parameterAsBool(parameters, OVERWRITE, context)

        def evaluate():
            from ..analysis.evaluation import evaluate_layers

            return evaluate_layers(
                det_path, ref_path, output, layer_output, iou_threshold,
                det_layer=det_layer, ref_layer=ref_layer, progress=feedback_progress(feedback), overwrite=overwrite,
            )

        summary = call_engine(feedback, evaluate)
        for warning in summary["warnings"]:
            feedback.pushWarning(warning)
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

