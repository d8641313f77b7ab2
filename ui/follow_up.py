"""The dock's follow-up actions after a detection: the prefilled Processing dialogs of
``thawslump:report`` and ``thawslump:train`` (each runs its algorithm as a background task)."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from qgis.core import QgsApplication

REPORT_ALGORITHM = "thawslump:report"
TRAIN_ALGORITHM = "thawslump:train"


def open_algorithm_dialog(algorithm_id: str, parameters: Dict[str, Any], warn: Callable[[str], None]) -> Any:
    """The standard Processing dialog, prefilled, shown; None (and a warning) when the algorithm is not registered."""
    if QgsApplication.processingRegistry().algorithmById(algorithm_id) is None:
        warn(f"{algorithm_id} is not registered in Processing; enable the Processing plugin and reload this one.")
        return None
    import processing

    dialog = processing.createAlgorithmDialog(algorithm_id, parameters)
    dialog.show()
    return dialog


def report_parameters(polygons: Any, image: Any) -> Dict[str, Any]:
    parameters = {"INPUT": polygons}
    if image is not None:
        parameters["IMAGE"] = image
    return parameters


def fine_tune_parameters(base_checkpoint: str) -> Dict[str, Any]:
    """The base checkpoint in every checkpoint input of thawslump:train (it calls it BASE)."""
    algorithm = QgsApplication.processingRegistry().algorithmById(TRAIN_ALGORITHM)
    parameters: Dict[str, Any] = {}
    if algorithm is not None and base_checkpoint:
        for definition in algorithm.parameterDefinitions():
            if (definition.name() == "BASE" or "CHECKPOINT" in definition.name()) and not definition.isDestination():
                parameters[definition.name()] = base_checkpoint
    return parameters


def fine_tuned_checkpoint(ok: bool, results: Optional[Dict[str, Any]]) -> Optional[str]:
    """The new .pt a finished thawslump:train run wrote, or None."""
    new_checkpoint = next((v for k, v in (results or {}).items() if "CHECKPOINT" in k or k == "OUTPUT"), None)
    if ok and new_checkpoint and str(new_checkpoint).endswith(".pt"):
        return str(new_checkpoint)
    return None
