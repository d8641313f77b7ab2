"""The Processing provider `thawslump`: one algorithm per module, each class imported by name.

Algorithm modules import only QGIS and the plugin's light modules at import time (torch and
the engine are imported when an algorithm runs), so loading the provider stays cheap for
qgis_process.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

from qgis.core import QgsApplication, QgsProcessingModelAlgorithm, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .change_algorithm import ChangeAlgorithm
from .detect_algorithm import DetectAlgorithm
from .detect_batch_algorithm import DetectBatchAlgorithm
from .evaluate_algorithm import EvaluateAlgorithm
from .export_labels_algorithm import ExportLabelsAlgorithm
from .morphometry_algorithm import MorphometryAlgorithm
from .report_algorithm import ReportAlgorithm
from .train_algorithm import TrainAlgorithm

PROVIDER_ID = "thawslump"

# In the order the toolbox lists them.
ALGORITHMS: Tuple[type, ...] = (
    DetectAlgorithm,
    MorphometryAlgorithm,
    ReportAlgorithm,
    EvaluateAlgorithm,
    ExportLabelsAlgorithm,
    TrainAlgorithm,
    ChangeAlgorithm,
    DetectBatchAlgorithm,
)


# Processing models (.model3) shipped with the plugin; each appears as thawslump:<model name>.
MODELS_FOLDER = Path(__file__).resolve().parent / "models"
# A model's name is also its id (thawslump:<name>), so the toolbox shows these titles instead.
MODEL_TITLES = {"detect_describe_report": "Detect, describe and report thaw slumps (model)"}


class ShippedModel(QgsProcessingModelAlgorithm):
    """A shipped model with a readable title; running it makes a plain model instance."""

    def displayName(self) -> str:  # noqa: N802
        return MODEL_TITLES.get(self.name(), self.name())


def algorithm_classes() -> List[type]:
    return list(ALGORITHMS)


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
        self._load_models()

    def _load_models(self) -> None:
        """Shipped .model3 files, after the algorithms they call. A model's children are looked
        up in the registry, which holds this provider only once its first load has finished:
        so the first load is followed by one refresh (see _reload_when_registered)."""
        for path in sorted(MODELS_FOLDER.glob("*.model3")):
            model = ShippedModel()
            if model.fromFile(str(path)):
                self.addAlgorithm(model)
        if QgsApplication.processingRegistry().providerById(self.id()) is None:
            self._reload_when_registered()

    def _reload_when_registered(self) -> None:
        registry = QgsApplication.processingRegistry()

        def reload(provider_id: str) -> None:
            if provider_id != self.id():
                return
            registry.providerAdded.disconnect(reload)
            self.refreshAlgorithms()

        registry.providerAdded.connect(reload)
