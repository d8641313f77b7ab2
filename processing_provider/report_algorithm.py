"""`thawslump:report`: the Processing front end of analysis.report.write_report."""
from __future__ import annotations

from typing import Any, Dict, Optional

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorLayer,
    QgsProcessing,
)

from .algorithm_base import ThawSlumpAlgorithm, call_engine, feedback_progress, raster_file_path, vector_layer_file


class ReportAlgorithm(ThawSlumpAlgorithm):
    NAME = "report"
    DISPLAY_NAME = "Slump morphometry report (HTML)"
    GROUP = "Analysis"
    GROUP_ID = "analysis"
    HELP = (
        "Writes one self-contained HTML page: histograms of area, perimeter, circularity, slope, TPI and "
        "solar radiation, an aspect rose, a map of the polygons (over the image when given) and summary "
        "tables, each compared with the Beiluhe values of Huang et al. (2020)."
    )
    INPUT = "INPUT"
    IMAGE = "IMAGE"
    OUTPUT = "OUTPUT"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterVectorLayer(self.INPUT, "Slump polygons", [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterRasterLayer(self.IMAGE, "Image for the map overview (optional)", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Report", "HTML files (*.html)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..analysis.report import write_report

        layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("Choose a polygon layer.")
        image = self.parameterAsRasterLayer(parameters, self.IMAGE, context)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        path, layer_name = vector_layer_file(layer, feedback)
        image_path = raster_file_path(image) if image is not None else None
        done = call_engine(
            feedback, lambda: write_report(path, output, image_path=image_path, layer=layer_name, progress=feedback_progress(feedback))
        )
        if done is None:
            return {}
        return {self.OUTPUT: output}
