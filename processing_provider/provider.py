"""The Processing provider `thawslump`: one algorithm per module, registered from a list.

Algorithm modules import only QGIS and the plugin's light modules at import time (torch and
the engine are imported when an algorithm runs), so loading the provider stays cheap for
qgis_process.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import List, Tuple

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

PROVIDER_ID = "thawslump"

# (module in processing_provider/, class name)
ALGORITHMS: Tuple[Tuple[str, str], ...] = (
    ("detect_algorithm", "DetectAlgorithm"),
    ("morphometry_algorithm", "MorphometryAlgorithm"),
    ("report_algorithm", "ReportAlgorithm"),
    ("evaluate_algorithm", "EvaluateAlgorithm"),
    ("export_labels_algorithm", "ExportLabelsAlgorithm"),
    ("train_algorithm", "TrainAlgorithm"),
    ("change_algorithm", "ChangeAlgorithm"),
    ("detect_batch_algorithm", "DetectBatchAlgorithm"),
)


def algorithm_classes() -> List[type]:
    return [getattr(importlib.import_module(f"{__package__}.{module}"), name) for module, name in ALGORITHMS]


class ThawSlumpProvider(QgsProcessingProvider):
    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "Thaw Slump Mapper"

    def longName(self) -> str:  # noqa: N802
        return "Thaw Slump Mapper (DeepLabv3+ thaw slump detection)"

    def icon(self) -> QIcon:
        return QIcon(str(Path(__file__).resolve().parent.parent / "icon.png"))

    def loadAlgorithms(self) -> None:  # noqa: N802
        for cls in algorithm_classes():
            self.addAlgorithm(cls())
