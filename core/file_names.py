"""Names the plugin gives files and layers, written once so the engine, the batch runner,
Processing and the dock agree where a detection's probability raster lies."""
from __future__ import annotations

import re
from pathlib import Path

DEFAULT_LAYER = "thaw_slumps"
# The bundled real scene (a git checkout only; the plugin zip leaves demo/ out): `make demo`
# detects on it, and int8 quantisation calibrates on it (engine/quantize.py).
DEMO_SCENE = Path(__file__).resolve().parent.parent / "demo" / "peel_plateau_s2_20210821_rgb.tif"


def probability_path(output_path: Path | str, layer_name: str = DEFAULT_LAYER) -> Path:
    """``<stem>_probability.tif`` for the default layer, ``<stem>_<layer>_probability.tif`` for any
    other, so two layers of one GeoPackage never share (or overwrite) one probability raster."""
    output_path = Path(output_path)
    if layer_name == DEFAULT_LAYER:
        return output_path.with_name(output_path.stem + "_probability.tif")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", layer_name).strip("._") or "layer"
    return output_path.with_name(f"{output_path.stem}_{safe}_probability.tif")
