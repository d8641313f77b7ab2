"""The Processing provider `thawslump`: registers every algorithm module that is present.

Each algorithm lives in its own module, written by different people at different times. The
provider imports them one by one, so a module that is missing or broken drops only its own
algorithm (logged), never the provider.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import List, Tuple

from qgis.core import Qgis, QgsMessageLog, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

PROVIDER_ID = "thawslump"
LOG_TAG = "Thaw Slump Mapper"

# (module in processing_provider/, class name). TODO(lead): drop the defensive import once
# every module below has landed, so a broken algorithm fails loudly in the tests instead.
ALGORITHMS: Tuple[Tuple[str, str], ...] = (
    ("detect_algorithm", "DetectAlgorithm"),
    ("morphometry_algorithm", "MorphometryAlgorithm"),
    ("report_algorithm", "ReportAlgorithm"),
    ("evaluate_algorithm", "EvaluateAlgorithm"),
    ("export_labels_algorithm", "ExportLabelsAlgorithm"),
    ("train_algorithm", "TrainAlgorithm"),
)


def algorithm_classes() -> Tuple[List[type], List[str]]:
    """The algorithm classes that import cleanly, and one line per one that does not."""
    classes, problems = [], []
    for module_name, class_name in ALGORITHMS:
        try:
            module = importlib.import_module(f"{__package__}.{module_name}")
            classes.append(getattr(module, class_name))
        except ModuleNotFoundError as err:
            problems.append(f"{module_name}: not available ({err})")
        except Exception as err:  # noqa: BLE001 - one broken module must not hide the others
            problems.append(f"{module_name}.{class_name}: {type(err).__name__}: {err}")
    return classes, problems


class ThawSlumpProvider(QgsProcessingProvider):
    def __init__(self) -> None:
        super().__init__()
        self.problems: List[str] = []

    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "Thaw Slump Mapper"

    def longName(self) -> str:  # noqa: N802
        return "Thaw Slump Mapper (DeepLabv3+ thaw slump detection)"

    def icon(self) -> QIcon:
        return QIcon(str(Path(__file__).resolve().parent.parent / "icon.png"))

    def loadAlgorithms(self) -> None:  # noqa: N802
        classes, self.problems = algorithm_classes()
        for cls in classes:
            self.addAlgorithm(cls())
        for problem in self.problems:
            QgsMessageLog.logMessage(f"Algorithm not loaded: {problem}", LOG_TAG, Qgis.Info)
