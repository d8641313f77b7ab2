"""What every `thawslump:` parameter description adds for users: its unit or range and its
default, and where each algorithm's documentation lives.

Kept in one table here, applied by ThawSlumpAlgorithm.addParameter, so the algorithm modules
stay as they are and a parameter's unit is written once.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

REPOSITORY_URL = "https://github.com/thaw-slump-mapper/thaw_slump_mapper"
DOCS_URL = f"{REPOSITORY_URL}/blob/main/docs/PROCESSING.md"

# (algorithm name, parameter name) -> unit or range, appended in brackets unless already said.
PARAMETER_UNITS: Dict[Tuple[str, str], str] = {
    ("detect", "INPUT"): "any resolution; resampled to the model's pixel size, 3 m for the bundled model",
    ("detect", "THRESHOLD"): "probability 0-1",
    ("detect", "MIN_AREA"): "m2",
    ("detect", "DEVICE"): "auto: CUDA when torch sees a GPU, else the CPU",
    ("morphometry", "DEM"): "elevation in m, any CRS",
    ("evaluate", "IOU_THRESHOLD"): "0-1",
    ("export_labels", "GSD"): "m",
    ("export_labels", "NEGATIVES_PER_POSITIVE"): "chips",
    ("train", "LEARNING_RATE"): "AdamW step size",
    ("train", "VAL_SHARE"): "0-1",
    ("train", "EPOCHS"): "passes over the chips",
    ("change", "MIN_OVERLAP"): "0-1",
    ("change", "MIN_RETREAT"): "m",
}


def docs_url(algorithm_name: str) -> str:
    """The algorithm's section of docs/PROCESSING.md (its heading is the algorithm name)."""
    return f"{DOCS_URL}#{algorithm_name}"


def described(algorithm_name: str, definition) -> str:
    """The definition's description with its unit and default added where it does not say them."""
    text = definition.description()
    unit = PARAMETER_UNITS.get((algorithm_name, definition.name()))
    if unit and unit not in text:
        text = f"{text} [{unit}]"
    default = _default_text(definition)
    if default is not None and "default" not in text.lower() and "empty" not in text.lower():
        text = f"{text} (default {default})"
    return text


def _default_text(definition) -> Any:
    """A user-facing default, or None where there is none worth showing (outputs, empty)."""
    if definition.isDestination():
        return None
    value = definition.defaultValue()
    if value is None or value == "":
        return None
    kind = definition.type()
    if kind == "boolean":
        return "yes" if value else "no"
    if kind == "enum":
        options = definition.options()
        return options[int(value)] if str(value).isdigit() and int(value) < len(options) else str(value)
    if kind == "number":
        return f"{float(value):g}"
    return str(value)
