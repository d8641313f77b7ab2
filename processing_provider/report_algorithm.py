"""`thawslump:report`: the Processing front end of analysis.report.write_report."""
from __future__ import annotations

from typing import Any, Dict, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorLayer,
)

from ..qgis_common.layer_adapters import layer_file, vector_layer_file
from .algorithm_base import (
    OVERWRITE,
    OVERWRITE_HELP,
    ThawSlumpAlgorithm,
    add_overwrite_parameter,
    call_engine,
    feedback_progress,
    raster_input,
)


class ReportAlgorithm(ThawSlumpAlgorithm):
    NAME = "report"
    DISPLAY_NAME = "Slump morphometry report (HTML)"
    GROUP = "Analysis"
    GROUP_ID = "analysis"
    HELP = (
        "Writes one self-contained HTML page: histograms of area, perimeter, circularity, slope, TPI and "
        "solar radiation, an aspect rose, a map of the polygons (over the image when given) and summary "
        "tables, each compared with the Beiluhe values of Huang et al. (2020). A missing output folder is "
        "created." + OVERWRITE_HELP
    )
    INPUT = "INPUT"
    IMAGE = "IMAGE"
    OUTPUT = "OUTPUT"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterVectorLayer(self.INPUT, "Slump polygons", [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterRasterLayer(self.IMAGE, "Image for the map overview (optional)", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Report", "HTML files (*.html)"))
        add_overwrite_parameter(self)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("Choose a polygon layer.")
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        path, layer_name = vector_layer_file(layer, feedback)
        image_path, _ = raster_input(self, parameters, self.IMAGE, context)
        overwrite = self.parameterAsBool(parameters, OVERWRITE, context)
        inputs = [layer_file(layer)[0], image_path]

        def report():
            from ..analysis.report import write_report
            from ..engine.output_safety import staged_file_output

            progress = feedback_progress(feedback)
            with staged_file_output(output, "report", (".html", ".htm"), inputs, overwrite, progress, create_folder=True) as temp:
                write_report(path, temp, image_path=image_path, layer=layer_name, progress=progress)

        call_engine(feedback, report)
        return {self.OUTPUT: output}
