"""`thawslump:change`: the Processing front end of analysis.change.compare_inventories."""
from __future__ import annotations

from typing import Any, Dict, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..qgis_common.layer_adapters import vector_layer_file
from .algorithm_base import ThawSlumpAlgorithm, call_engine, feedback_progress

# (output name, GeoPackage layer, display name)
LAYER_OUTPUTS = (
    ("CHANGE", "change", "Change (latest outlines by class)"),
    ("NOT_SEEN_AGAIN", "not_seen_again", "Not seen again (candidates for stabilised)"),
    ("GROWTH_AREAS", "growth_areas", "Growth areas"),
    ("SUMMARY", "change_summary", "Change summary per date"),
)
COUNT_OUTPUTS = ("N_REPEAT", "N_NEW", "N_MERGED", "N_SPLIT", "N_GROWING", "N_NOT_SEEN_AGAIN")


class _StyleByClass(QgsProcessingLayerPostProcessorInterface):
    """Colours a loaded change layer by class (runs on the main thread after the algorithm)."""

    def __init__(self, layer_name: str) -> None:
        super().__init__()
        self.layer_name = layer_name

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802
        from ..qgis_common.change_style import style_for_layer_name

        style_for_layer_name(layer, self.layer_name)


class ChangeAlgorithm(ThawSlumpAlgorithm):
    NAME = "change"
    DISPLAY_NAME = "Slumps through time (change between dated layers)"
    GROUP = "Analysis"
    GROUP_ID = "analysis"
    HELP = (
        "Compares two or more dated slump layers (detections, corrected layers or any polygon layer). "
        "Layers may be in different CRSs; they are compared in the latest layer's metric CRS.\n\n"
        "Dates: one per layer in DATES (2019-07-15,2021-07-20, in the order of the layers), or a date "
        "field in the layers (date, image_date, acq_date, BaseMapDate, year ...).\n\n"
        "Each date is compared with the previous one. Two outlines are the same slump when their overlap "
        "is at least MIN_OVERLAP of the smaller one. A later slump is repeat (one match), new (none), "
        "merged (several earlier) or split (its earlier slump also became others); an earlier slump "
        "with no match is not seen again (candidate for stabilised). Per slump: area and perimeter "
        "change, headwall retreat (max and mean outward distance of the new boundary from the old "
        "outline, m and m/yr), growth direction (degrees from north), growing (headwall out at least "
        "MIN_RETREAT m), a stable slump_id and the ARTS "
        "relationship fields (RepeatRTS, MergedRTS, SplitRTS, NewRTS, StabilizedRTS, UnknownRelationship).\n\n"
        "OUTPUT is a GeoPackage with the layers change, not_seen_again, growth_areas, change_summary "
        "and change_history; existing layers of these names are replaced only with OVERWRITE."
    )
    INPUTS = "INPUTS"
    DATES = "DATES"
    DATE_FIELD = "DATE_FIELD"
    MIN_OVERLAP = "MIN_OVERLAP"
    MIN_RETREAT = "MIN_RETREAT"
    OVERWRITE = "OVERWRITE"
    OUTPUT = "OUTPUT"
    REPORT = "REPORT"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.INPUTS, "Dated slump layers (two or more, oldest first when DATES is used)", QgsProcessing.TypeVectorPolygon))
        self.addParameter(QgsProcessingParameterString(
            self.DATES, "Dates, one per layer (YYYY-MM-DD,YYYY-MM-DD); empty = read a date field", optional=True))
        self.addParameter(QgsProcessingParameterString(self.DATE_FIELD, "Date field (empty = find one)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_OVERLAP, "Overlap that makes two outlines the same slump (share of the smaller)",
            QgsProcessingParameterNumber.Double, defaultValue=0.1, minValue=0.001, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_RETREAT, "Headwall move that makes a slump 'growing' (m; use the pixel size)",
            QgsProcessingParameterNumber.Double, defaultValue=1.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterBoolean(self.OVERWRITE, "Replace change layers already in the output", False))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Change GeoPackage", "GeoPackage (*.gpkg)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.REPORT, "HTML report", "HTML files (*.html)", optional=True, createByDefault=False))
        for name, _, label in LAYER_OUTPUTS:
            self.addOutput(QgsProcessingOutputVectorLayer(name, label))
        for name in COUNT_OUTPUTS:
            self.addOutput(QgsProcessingOutputNumber(name, name[2:].replace("_", " ").lower() + " slumps"))

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Any]:  # noqa: N802
        from ..analysis.change import compare_inventories

        layers = self.parameterAsLayerList(parameters, self.INPUTS, context)
        if not layers:
            raise QgsProcessingException("Choose two or more dated slump layers.")
        inputs = [self._input_text(layer, feedback) for layer in layers]
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        report = self.parameterAsFileOutput(parameters, self.REPORT, context) or None
        result = call_engine(feedback, lambda: self._run(compare_inventories, inputs, output, report, parameters, context, feedback))
        if result is None:
            return {}
        feedback.pushInfo(f"Dates {', '.join(result.dates)} compared in {result.crs_name}: " +
                          ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in result.counts.items()))
        outputs: Dict[str, Any] = {self.OUTPUT: output}
        for name, layer_name, label in LAYER_OUTPUTS:
            outputs[name] = f"{output}|layername={layer_name}"
            if layer_name != "change_summary":
                self._load_on_completion(outputs[name], label, layer_name, context)
        for name in COUNT_OUTPUTS:
            outputs[name] = result.counts[name[2:].lower()]
        if report:
            outputs[self.REPORT] = report
        return outputs

    def _run(self, compare, inputs, output, report, parameters, context, feedback):
        result = compare(
            inputs, output, dates=self.parameterAsString(parameters, self.DATES, context) or None,
            date_field=self.parameterAsString(parameters, self.DATE_FIELD, context) or None,
            min_overlap=self.parameterAsDouble(parameters, self.MIN_OVERLAP, context),
            overwrite=self.parameterAsBool(parameters, self.OVERWRITE, context), progress=feedback_progress(feedback),
            min_retreat_m=self.parameterAsDouble(parameters, self.MIN_RETREAT, context),
        )
        if report:
            from ..analysis.change_report import write_change_report

            write_change_report(output, report)
        return result

    @staticmethod
    def _input_text(layer, feedback) -> str:
        path, layer_name = vector_layer_file(layer, feedback)
        return f"{path}|layername={layer_name}" if layer_name else path

    def _load_on_completion(self, uri: str, label: str, layer_name: str, context) -> None:
        """In the Processing dialog the layers open styled by class (scripts and models ignore this)."""
        details = QgsProcessingContext.LayerDetails(label, context.project(), label)
        post = _StyleByClass(layer_name)
        self._post_processors = getattr(self, "_post_processors", []) + [post]  # keep them alive
        details.setPostProcessor(post)
        context.addLayerToLoadOnCompletion(uri, details)
