"""`thawslump:train`: the Processing front end of model.training.fine_tune.

Fine-tunes a checkpoint (the bundled one by default) on one or more training-chip folders
and writes a new checkpoint. Cancelling keeps the best weights so far as
``<output>.cancelled-best.pt``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from qgis.core import (
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core.checkpoint import bundled_checkpoint_path
from ..core.devices import DEVICE_CHOICES
from ..model.fine_tune_defaults import FINE_TUNE_EPOCHS, FINE_TUNE_LEARNING_RATE, FINE_TUNE_MINUTES_CPU, TRAIN_SEED
from ..model.precision import PRECISION_CHOICES
from .algorithm_base import (  # the output rule (docs/OUTPUTS.md)
    OVERWRITE,
    ThawSlumpAlgorithm,
    add_overwrite_parameter,
    call_engine,
    feedback_progress,
    optional_number,
)


def split_folder_list(text: str) -> List[Path]:
    """Folders separated by ';' or new lines (Processing has no multi-folder parameter)."""
    parts = [p.strip().strip('"') for chunk in (text or "").splitlines() for p in chunk.split(";")]
    return [Path(p) for p in parts if p]


class TrainAlgorithm(ThawSlumpAlgorithm):
    NAME = "train"
    DISPLAY_NAME = "Fine-tune the thaw slump model"
    GROUP = "Training"
    GROUP_ID = "training"
    HELP = (
        "Fine-tunes a DeepLabv3+ checkpoint (the bundled model by default) on training-chip "
        "folders written by 'Export labels' (images/, masks/, manifest.csv). Training stops "
        "early when the validation IoU stops improving or when the time budget runs out, keeps "
        "the best weights, takes the chips' ground sample distance and tunes the threshold and "
        "minimum area on the validation chips. The new checkpoint records its parent, its data "
        "and its validation metrics.\n\n"
        "More chip folders: separate them with ';'. Validation share empty: the manifest's val "
        "rows, else 15 %. Working pixel size empty: the chips' median GSD; a size given resamples the "
        "chips to it (for example 10 m Sentinel-2 chips seen at the bundled model's 3 m). "
        "Cancelling keeps the best weights so far as <output>.cancelled-best.pt."
    )

    DATA = "DATA"
    EXTRA_DATA = "EXTRA_DATA"
    BASE = "BASE"
    EPOCHS = "EPOCHS"
    LEARNING_RATE = "LEARNING_RATE"
    VAL_SHARE = "VAL_SHARE"
    MAX_MINUTES = "MAX_MINUTES"
    GSD = "GSD"
    DEVICE = "DEVICE"
    PRECISION = "PRECISION"
    SEED = "SEED"
    OUTPUT = "OUTPUT"
    SUMMARY = "SUMMARY"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFile(self.DATA, "Training-chip folder", behavior=QgsProcessingParameterFile.Folder))
        self.addParameter(QgsProcessingParameterString(self.EXTRA_DATA, "More chip folders (separated by ';')", defaultValue="", optional=True))
        self.addParameter(
            QgsProcessingParameterFile(
                self.BASE, "Base checkpoint (.pt; the bundled model by default)", behavior=QgsProcessingParameterFile.File,
                extension="pt", defaultValue=str(bundled_checkpoint_path()), optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.EPOCHS, "Most epochs", QgsProcessingParameterNumber.Integer, defaultValue=FINE_TUNE_EPOCHS, minValue=1
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.LEARNING_RATE,
                "Learning rate",
                QgsProcessingParameterNumber.Double,
                defaultValue=FINE_TUNE_LEARNING_RATE,
                minValue=1e-7,
                maxValue=1.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.VAL_SHARE, "Validation share (empty: the manifest's val rows, else 0.15)", QgsProcessingParameterNumber.Double,
                optional=True, minValue=0.0, maxValue=0.9,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MAX_MINUTES,
                "Time budget for training, minutes",
                QgsProcessingParameterNumber.Double,
                defaultValue=FINE_TUNE_MINUTES_CPU,
                minValue=0.1,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.GSD, "Working pixel size in m (empty: the chips' own)", QgsProcessingParameterNumber.Double,
                optional=True, minValue=0.01,
            )
        )
        self.addParameter(QgsProcessingParameterEnum(self.DEVICE, "Device", options=list(DEVICE_CHOICES), defaultValue=0))
        self.addParameter(
            QgsProcessingParameterEnum(
                self.PRECISION, "Numeric precision (auto: bf16 on a CPU with bf16 kernels, else fp32; bf16 or fp16 on CUDA)",
                options=list(PRECISION_CHOICES), defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(self.SEED, f"Random seed (empty: {TRAIN_SEED})", QgsProcessingParameterNumber.Integer,
                                         optional=True, minValue=0)
        )
        self.addParameter(QgsProcessingParameterFileDestination(self.OUTPUT, "New checkpoint", fileFilter="Checkpoint (*.pt)"))
        add_overwrite_parameter(self)
        self.addOutput(QgsProcessingOutputString(self.SUMMARY, "Summary"))

    def processAlgorithm(self, parameters, context, feedback) -> Dict[str, Any]:  # noqa: N802
        folders = [Path(self.parameterAsFile(parameters, self.DATA, context))]
        folders += split_folder_list(self.parameterAsString(parameters, self.EXTRA_DATA, context))
        base = self.parameterAsFile(parameters, self.BASE, context)
        output = Path(self.parameterAsFileOutput(parameters, self.OUTPUT, context))
        val_share = optional_number(self, parameters, self.VAL_SHARE, context)
        gsd = optional_number(self, parameters, self.GSD, context)
        seed = optional_number(self, parameters, self.SEED, context, integer=True)
        precision = PRECISION_CHOICES[self.parameterAsEnum(parameters, self.PRECISION, context)]
        device = DEVICE_CHOICES[self.parameterAsEnum(parameters, self.DEVICE, context)]

        overwrite = self.parameterAsBool(parameters, OVERWRITE, context)

        def train():
            from ..engine.output_safety import check_file_output
            from ..model.training import fine_tune

            # Checked before hours of training: never the base checkpoint or a chip folder.
            check_file_output(output, "checkpoint", (".pt",), [base, *folders], overwrite)

            return fine_tune(
                folders, output, base_checkpoint=Path(base) if base else None,
                epochs=self.parameterAsInt(parameters, self.EPOCHS, context),
                learning_rate=self.parameterAsDouble(parameters, self.LEARNING_RATE, context),
                val_share=val_share, max_minutes=self.parameterAsDouble(parameters, self.MAX_MINUTES, context),
                progress=feedback_progress(feedback), gsd_m=gsd, seed=seed, precision=precision,
                device=device,
            )

        result = call_engine(feedback, train, "Cancelled: the best weights so far are kept as <output>.cancelled-best.pt.")
        ckpt = result.checkpoint
        summary = (
            f"{ckpt.summary()}; threshold {ckpt.threshold:g}, minimum area {ckpt.min_area_m2:g} m2; "
            f"{result.n_train} training / {result.n_val} validation chips in {result.elapsed_s / 60:.1f} min"
        )
        feedback.pushInfo(summary)
        return {self.OUTPUT: str(output), self.SUMMARY: summary}
