"""`thawslump:export_labels`: the Processing front end of analysis.label_export.export_labels."""
from __future__ import annotations

from typing import Any, Dict, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
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
    optional_number,
    raster_input,
)

UNREVIEWED_CHOICES = ("positive", "negative", "ignore")


class ExportLabelsAlgorithm(ThawSlumpAlgorithm):
    NAME = "export_labels"
    DISPLAY_NAME = "Export training labels (chips)"
    GROUP = "Review and training"
    GROUP_ID = "review"
    HELP = (
        "Cuts training chips from an image and labelled polygons: georeferenced GeoTIFF image chips on "
        "the image grid (resampled when a GSD is given; default the checkpoint's, else the image's), "
        "uint8 masks (0 background, 1 slump, 255 ignore/nodata) and manifest.csv, the format the "
        "training reads.\n\n"
        "Labels: a reviewed detection layer (review = rejected becomes a negative example) or any "
        "polygon layer with an optional TrainClass field (Positive/Negative, as ARTS). Positive chips "
        "are centred on slumps with BUFFER metres of context (the paper used 300 m); negative chips on "
        "rejected polygons; background chips at random away from slumps. Train/val are split by "
        "spatial group so overlapping chips never straddle the split. An ARTS-schema GeoJSON of the "
        "labels (labels_arts.geojson) is written beside the chips. The chips are built in a temporary "
        "folder and moved into the chip folder only when complete." + OVERWRITE_HELP
    )
    IMAGE = "IMAGE"
    LABELS = "LABELS"
    OUTPUT = "OUTPUT"
    GSD = "GSD"
    CHECKPOINT = "CHECKPOINT"
    BANDS = "BANDS"
    CHIP_SIZE = "CHIP_SIZE"
    BUFFER = "BUFFER"
    NEGATIVES_PER_POSITIVE = "NEGATIVES_PER_POSITIVE"
    UNREVIEWED = "UNREVIEWED"
    CREATOR_LAB = "CREATOR_LAB"
    BASE_MAP_DATE = "BASE_MAP_DATE"
    SEED = "SEED"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer(self.IMAGE, "Image the labels were drawn on"))
        self.addParameter(QgsProcessingParameterVectorLayer(self.LABELS, "Label polygons", [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, "Chip folder"))
        self.addParameter(number(self.GSD, "Chip pixel size in m (empty: checkpoint's, else image's)", number.Double, optional=True, minValue=0.01))
        self.addParameter(
            QgsProcessingParameterFile(self.CHECKPOINT, "Checkpoint whose GSD is the default", extension="pt", optional=True)
        )
        self.addParameter(QgsProcessingParameterString(self.BANDS, "Image bands to copy, e.g. 1,2,3 (empty: first three)", optional=True))
        self.addParameter(number(self.CHIP_SIZE, "Smallest chip side (pixels)", number.Integer, defaultValue=256, minValue=16))
        self.addParameter(number(self.BUFFER, "Context around each slump (m)", number.Double, defaultValue=300.0, minValue=0.0))
        self.addParameter(number(self.NEGATIVES_PER_POSITIVE, "Background chips per positive chip", number.Double, defaultValue=1.0, minValue=0.0))
        self.addParameter(
            QgsProcessingParameterEnum(self.UNREVIEWED, "Unreviewed detections count as", options=list(UNREVIEWED_CHOICES), defaultValue=0)
        )
        self.addParameter(QgsProcessingParameterString(self.CREATOR_LAB, "CreatorLab (ARTS)", defaultValue="", optional=True))
        self.addParameter(QgsProcessingParameterString(self.BASE_MAP_DATE, "BaseMapDate (ARTS)", defaultValue="", optional=True))
        self.addParameter(number(self.SEED, "Random seed", number.Integer, defaultValue=0))
        add_overwrite_parameter(self)
        for name in ("N_CHIPS", "N_TRAIN", "N_VAL"):
            self.addOutput(QgsProcessingOutputNumber(name, name.replace("_", " ").lower()))

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Any]:  # noqa: N802
        image_path, _ = raster_input(self, parameters, self.IMAGE, context)
        labels = self.parameterAsVectorLayer(parameters, self.LABELS, context)
        if image_path is None or labels is None:
            raise QgsProcessingException("Choose an image and a label layer.")
        labels_path, labels_layer = vector_layer_file(labels, feedback)
        output = self.parameterAsString(parameters, self.OUTPUT, context)
        bands_text = self.parameterAsString(parameters, self.BANDS, context) or ""
        from ..engine.bands import parse_band_list

        bands = call_engine(feedback, lambda: parse_band_list(bands_text))
        gsd = optional_number(self, parameters, self.GSD, context)
        checkpoint = self.parameterAsFile(parameters, self.CHECKPOINT, context) or None
        progress = feedback_progress(feedback)
        settings = dict(
            labels_layer=labels_layer, gsd_m=gsd,
            chip_size_px=self.parameterAsInt(parameters, self.CHIP_SIZE, context),
            buffer_m=self.parameterAsDouble(parameters, self.BUFFER, context),
            negatives_per_positive=self.parameterAsDouble(parameters, self.NEGATIVES_PER_POSITIVE, context),
            creator_lab=self.parameterAsString(parameters, self.CREATOR_LAB, context) or "",
            base_map_date=self.parameterAsString(parameters, self.BASE_MAP_DATE, context) or "",
            seed=self.parameterAsInt(parameters, self.SEED, context),
            checkpoint_path=checkpoint, bands=bands,
            unreviewed=UNREVIEWED_CHOICES[self.parameterAsEnum(parameters, self.UNREVIEWED, context)],
        )
        overwrite = self.parameterAsBool(parameters, OVERWRITE, context)
        inputs = [image_path, labels_path, layer_file(labels)[0], checkpoint]

        def export():
            from ..analysis.label_export import ExportOptions, export_labels
            from ..engine.output_safety import staged_chip_export

            with staged_chip_export(output, inputs, overwrite, progress) as folder:
                return export_labels(image_path, labels_path, folder, ExportOptions(**settings), progress)

        summary = call_engine(feedback, export)
        feedback.pushInfo(
            f"{summary.n_chips} chips at {summary.gsd_m:g} m: {summary.n_positive_chips} slump, {summary.n_negative_chips} "
            f"rejected, {summary.n_background_chips} background; {summary.n_train} train, {summary.n_val} val."
        )
        for warning in summary.warnings:
            feedback.pushWarning(warning)
        return {self.OUTPUT: output, "N_CHIPS": summary.n_chips, "N_TRAIN": summary.n_train, "N_VAL": summary.n_val}
