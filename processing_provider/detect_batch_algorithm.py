"""`thawslump:detect_batch`: the Processing front end of engine.batch.run_batch.

Many scenes (a folder, a glob, or a .txt/.csv list) into one inventory GeoPackage, on a
Dask LocalCluster on this machine or on a running Dask cluster (SCHEDULER). Works in
QGIS's batch and model tools: every parameter is a plain value, every output a file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.checkpoint import bundled_checkpoint_path
from ..core.devices import DEVICE_CHOICES
from .algorithm_base import ThawSlumpAlgorithm, call_engine, feedback_progress


class DetectBatchAlgorithm(ThawSlumpAlgorithm):
    NAME = "detect_batch"
    DISPLAY_NAME = "Detect thaw slumps in many scenes (batch)"
    GROUP = "Detection"
    GROUP_ID = "detection"
    HELP = (
        "Detects thaw slumps in every scene of a folder, a glob (e.g. /data/scenes/*.tif) or a .txt/.csv "
        "list of paths (a CSV may give each scene its own bands), and merges them into one GeoPackage: the "
        "layer thaw_slumps (with source scene, acquisition date, and all sources of a slump seen in "
        "overlapping scenes) and the layer scenes (footprint, status done/failed/skipped with the reason, "
        "counts, time).\n\n"
        "SCHEDULER empty: a Dask LocalCluster on this machine (WORKERS workers; 0 = one per GPU, else sized "
        "to the cores and memory). SCHEDULER tcp://host:port: a running Dask cluster, whose workers must see "
        "the scenes and the output folder at the same paths.\n\n"
        "Running it again with the same output maps only the scenes not done yet (the per-scene results are "
        "kept in <output name>.scenes beside the output). See docs/BATCH.md."
    )
    INPUTS = "INPUTS"
    CHECKPOINT = "CHECKPOINT"
    BANDS = "BANDS"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    DEVICE = "DEVICE"
    SCHEDULER = "SCHEDULER"
    WORKERS = "WORKERS"
    OVERWRITE = "OVERWRITE"
    OUTPUT = "OUTPUT"
    SLUMPS = "SLUMPS"
    SCENES = "SCENES"
    N_DONE = "N_DONE"
    N_FAILED = "N_FAILED"
    N_SLUMPS = "N_SLUMPS"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterString(self.INPUTS, "Scenes: a folder, a glob or a .txt/.csv list of paths"))
        self.addParameter(
            QgsProcessingParameterFile(
                self.CHECKPOINT, "Checkpoint (.pt; the bundled model by default)", behavior=QgsProcessingParameterFile.File,
                extension="pt", defaultValue=str(bundled_checkpoint_path()), optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterString(
            self.BANDS, "Raster band per checkpoint band for scenes the list gives none, e.g. 1,2,3 (empty: automatic)",
            defaultValue="", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.THRESHOLD, "Probability threshold (empty: the checkpoint's)", QgsProcessingParameterNumber.Double,
            optional=True, minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_AREA, "Minimum slump area in m2 (empty: the checkpoint's)", QgsProcessingParameterNumber.Double,
            optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterEnum(self.DEVICE, "Device", options=list(DEVICE_CHOICES), defaultValue=0))
        self.addParameter(QgsProcessingParameterString(
            self.SCHEDULER, "Dask scheduler tcp://host:port (empty: a LocalCluster on this machine)", defaultValue="", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.WORKERS, "LocalCluster workers (0: automatic)", QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0))
        self.addParameter(QgsProcessingParameterBoolean(
            self.OVERWRITE, "Replace an output the batch did not write, or redo scenes mapped with other settings", defaultValue=False))
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "Inventory", fileFilter="GeoPackage (*.gpkg)"))
        self.addOutput(QgsProcessingOutputVectorLayer(self.SLUMPS, "Thaw slumps"))
        self.addOutput(QgsProcessingOutputVectorLayer(self.SCENES, "Scenes"))
        self.addOutput(QgsProcessingOutputNumber(self.N_DONE, "Scenes done"))
        self.addOutput(QgsProcessingOutputNumber(self.N_FAILED, "Scenes failed"))
        self.addOutput(QgsProcessingOutputNumber(self.N_SLUMPS, "Slumps in the inventory"))

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Any]:  # noqa: N802
        inputs = self.parameterAsString(parameters, self.INPUTS, context)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not output:
            raise QgsProcessingException("Choose an output GeoPackage.")
        checkpoint = self.parameterAsFile(parameters, self.CHECKPOINT, context)
        bands_text = self.parameterAsString(parameters, self.BANDS, context)
        workers = self.parameterAsInt(parameters, self.WORKERS, context)
        options = dict(
            threshold=self._optional_number(parameters, self.THRESHOLD, context),
            min_area_m2=self._optional_number(parameters, self.MIN_AREA, context),
            device=DEVICE_CHOICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
            scheduler=self.parameterAsString(parameters, self.SCHEDULER, context).strip() or None,
            workers=workers or None, overwrite=self.parameterAsBool(parameters, self.OVERWRITE, context),
        )

        def batch():
            from ..engine.bands import parse_band_list
            from ..engine.batch import BatchRequest, run_batch

            request = BatchRequest(inputs=inputs, output_path=Path(output), bands=parse_band_list(bands_text),
                                   checkpoint_path=Path(checkpoint) if checkpoint else None, **options)
            return run_batch(request, feedback_progress(feedback))

        result = call_engine(feedback, batch, "Cancelled: the scenes already done are kept; run again to resume.")
        if result is None:
            return {}
        feedback.pushInfo(f"{result.n_done} scenes done ({result.n_done_before} from earlier runs), {result.n_failed} failed, "
                          f"{result.n_skipped} skipped on {result.engine}; {result.n_slumps} slumps")
        for name, reason in result.failures:
            feedback.reportError(f"{name} failed: {reason}", False)
        path = str(result.output_path)
        return {self.OUTPUT: path, self.SLUMPS: f"{path}|layername=thaw_slumps", self.SCENES: f"{path}|layername=scenes",
                self.N_DONE: result.n_done, self.N_FAILED: result.n_failed, self.N_SLUMPS: result.n_slumps}

    def _optional_number(self, parameters, name: str, context) -> Optional[float]:
        if parameters.get(name) in (None, ""):
            return None
        return self.parameterAsDouble(parameters, name, context)
