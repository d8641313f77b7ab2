"""Write processing_provider/models/detect_describe_report.model3 with PyQGIS.

The model is built in code (not drawn by hand in the modeler) so that a change of a child
algorithm's parameters is one edit here and one run, and the file stays reviewable.
Run: .venv/bin/python tools/make_processing_model.py   (or `make processing-model`)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# Qt orders XML attributes by hash; a fixed seed keeps the written file stable between runs.
os.environ.setdefault("QT_HASH_SEED", "0")

REPO = Path(__file__).resolve().parent.parent
MODEL_PATH = REPO / "processing_provider" / "models" / "detect_describe_report.model3"
MODEL_NAME = "detect_describe_report"

HELP = {
    "ALG_DESC": (
        "Detect thaw slumps, describe them, report: thawslump:detect finds slump polygons in the image "
        "with the bundled DeepLabv3+ model (or your checkpoint), thawslump:morphometry adds shape fields "
        "and, from the DEM, terrain fields (elevation, slope, aspect, TPI, solar radiation), and "
        "thawslump:report writes one HTML page of histograms, an aspect rose and a map."
    ),
    "ALG_CREATOR": "Thaw Slump Mapper authors",
    "ALG_HELP_CREATOR": "Thaw Slump Mapper authors",
    "IMAGE": "Optical image, e.g. PlanetScope or Sentinel-2, at any resolution; it is resampled to the model's 3 m.",
    "DEM": "Digital elevation model in metres, any CRS (e.g. SRTM or ArcticDEM).",
    "CHECKPOINT": "A .pt checkpoint; empty: the bundled model.",
    "BANDS": "The raster band for each model band (red, green, blue), e.g. 3,2,1; empty: automatic.",
    "THRESHOLD": "Slump probability 0-1 a pixel must reach; empty: the checkpoint's value.",
    "MIN_AREA": "Polygons smaller than this (m\u00b2) are dropped; empty: the checkpoint's value.",
    "SOLAR": "Potential incoming solar radiation, 1 May - 31 Aug (slow on large DEMs). Default: yes.",
    "detect:SLUMPS": "The detected slump polygons with scores.",
    "morphometry:MORPHOMETRY": "The same polygons with shape and terrain fields.",
    "report:REPORT": "The HTML report.",
    "SHORT_DESCRIPTION": "Detect thaw slumps, add morphometry from a DEM and write an HTML report.",
    "HELP_URL": "https://github.com/thaw-slump-mapper/thaw_slump_mapper/blob/main/docs/PROCESSING.md#detect_describe_report",
}


def build_model():
    """The model; the thawslump provider must be registered so the children resolve."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterBoolean,
        QgsProcessingParameterFile,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
        QgsProcessingParameterString,
    )
    from qgis.core import (
        QgsProcessingModelChildParameterSource as Source,
    )
    from qgis.PyQt.QtCore import QPointF

    model = QgsProcessingModelAlgorithm(MODEL_NAME, "Models", "models")
    model.setHelpContent(HELP)
    inputs = [
        QgsProcessingParameterRasterLayer("IMAGE", "Image"),
        QgsProcessingParameterRasterLayer("DEM", "DEM (elevation in m, any CRS)"),
        QgsProcessingParameterFile("CHECKPOINT", "Checkpoint (.pt; empty: the bundled model)", extension="pt", optional=True),
        QgsProcessingParameterString("BANDS", "Raster band per model band, e.g. 3,2,1 (empty: automatic)", defaultValue="", optional=True),
        QgsProcessingParameterNumber(
            "THRESHOLD",
            "Probability threshold 0-1 (empty: the checkpoint's)",
            QgsProcessingParameterNumber.Double,
            optional=True,
            minValue=0.0,
            maxValue=1.0,
        ),
        QgsProcessingParameterNumber(
            "MIN_AREA", "Minimum slump area in m\u00b2 (empty: the checkpoint's)", QgsProcessingParameterNumber.Double, optional=True, minValue=0.0
        ),
        QgsProcessingParameterBoolean("SOLAR", "Compute solar radiation (slow; default yes)", defaultValue=True),
    ]
    for row, definition in enumerate(inputs):
        component = QgsProcessingModelParameter(definition.name())
        component.setPosition(QPointF(120, 60 + 70 * row))
        model.addModelParameter(definition, component)

    detect = _child("thawslump:detect", "detect", "Detect thaw slumps", QPointF(420, 120))
    for child_param, model_param in (("INPUT", "IMAGE"), ("CHECKPOINT", "CHECKPOINT"), ("BANDS", "BANDS"),
                                     ("THRESHOLD", "THRESHOLD"), ("MIN_AREA", "MIN_AREA")):
        detect.addParameterSources(child_param, [Source.fromModelParameter(model_param)])
    detect.addParameterSources("DEVICE", [Source.fromStaticValue(0)])
    _output(detect, "OUTPUT", "SLUMPS", "Thaw slumps", QgsProcessingModelOutput, QPointF(640, 60))

    describe = _child("thawslump:morphometry", "morphometry", "Slump morphometry", QPointF(420, 300))
    describe.addParameterSources("INPUT", [Source.fromChildOutput("detect", "OUTPUT")])
    describe.addParameterSources("DEM", [Source.fromModelParameter("DEM")])
    describe.addParameterSources("SOLAR", [Source.fromModelParameter("SOLAR")])
    _output(describe, "OUTPUT", "MORPHOMETRY", "Slumps with morphometry", QgsProcessingModelOutput, QPointF(640, 260))

    report = _child("thawslump:report", "report", "Slump morphometry report (HTML)", QPointF(420, 480))
    report.addParameterSources("INPUT", [Source.fromChildOutput("morphometry", "OUTPUT")])
    report.addParameterSources("IMAGE", [Source.fromModelParameter("IMAGE")])
    _output(report, "OUTPUT", "REPORT", "Report", QgsProcessingModelOutput, QPointF(640, 440))

    for child in (detect, describe, report):
        model.addChildAlgorithm(child)
    return model


def _child(algorithm_id: str, child_id: str, description: str, position):
    from qgis.core import QgsProcessingModelChildAlgorithm

    child = QgsProcessingModelChildAlgorithm(algorithm_id)
    child.setChildId(child_id)
    child.setDescription(description)
    child.setPosition(position)
    return child


def _output(child, child_output: str, name: str, description: str, output_class, position) -> None:
    output = output_class(name, description)
    output.setChildId(child.childId())
    output.setChildOutputName(child_output)
    output.setPosition(position)
    child.setModelOutputs({name: output})


def main(path: Path = MODEL_PATH) -> Path:
    sys.path.insert(0, str(REPO.parent))  # `thaw_slump_mapper` when the checkout is named so
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    from thaw_slump_mapper.processing_provider.provider import PROVIDER_ID, ThawSlumpProvider

    registry = QgsApplication.processingRegistry()
    if registry.providerById(PROVIDER_ID) is None:
        registry.addProvider(ThawSlumpProvider())
    model = build_model()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".model3.partial")
    if not model.toFile(str(temporary)):
        raise SystemExit(f"could not write {temporary}")
    temporary.replace(path)
    return path


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else MODEL_PATH))
