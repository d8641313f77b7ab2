"""`thawslump:report`: the Processing front end of analysis.report.write_report."""
from __future__ import annotations

from typing import Any, Dict, Optional

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorLayer,
    QgsProcessing,
)


class ReportAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    IMAGE = "IMAGE"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "report"

    def displayName(self) -> str:  # noqa: N802
        return "Slump morphometry report (HTML)"

    def group(self) -> str:
        return "Analysis"

    def groupId(self) -> str:  # noqa: N802
        return "analysis"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Writes one self-contained HTML page: histograms of area, perimeter, circularity, slope, TPI and "
            "solar radiation, an aspect rose, a map of the polygons (over the image when given) and summary "
            "tables, each compared with the Beiluhe values of Huang et al. (2020)."
        )

    def createInstance(self) -> "ReportAlgorithm":  # noqa: N802
        return ReportAlgorithm()

    def flags(self):
        return super().flags() | QgsProcessingAlgorithm.FlagCanCancel

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterVectorLayer(self.INPUT, "Slump polygons", [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterRasterLayer(self.IMAGE, "Image for the map overview (optional)", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Report", "HTML files (*.html)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..analysis.report import write_report
        from ..engine.errors import Cancelled, UserError
        from ..engine.progress import Progress

        layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("Choose a polygon layer.")
        image = self.parameterAsRasterLayer(parameters, self.IMAGE, context)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        source = layer.source()
        path, _, options = source.partition("|")
        layer_name = None
        for option in options.split("|"):
            if option.startswith("layername="):
                layer_name = option.split("=", 1)[1]
        progress = Progress(lambda fraction, message: feedback.setProgress(100.0 * fraction), feedback.isCanceled)
        try:
            write_report(path, output, image_path=image.source() if image else None, layer=layer_name, progress=progress)
        except UserError as err:
            raise QgsProcessingException(str(err))
        except Cancelled:
            return {}
        return {self.OUTPUT: output}
