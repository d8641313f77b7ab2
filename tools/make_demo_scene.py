"""Derive the bundled demo scene and its reference outlines from ../shared/data/sentinel2_sites.

The scene is the Copernicus Sentinel-2 L2A clip of the Peel Plateau (Canada, 21 Aug 2021,
UTM 8N, 251 x 251 px at 10 m) from the RTSInTrain digitisation experiment
(initze/RTS_digitization_experiment, MIT): bands 3,2,1 (B4, B3, B2 = red, green, blue) as 8-bit
RGB, each band stretched linearly between its 0.5th and 99.5th percentile (1..255; 0 is nodata).
Copernicus Sentinel data are free and open, so these pixels may ship inside the plugin; the
ARTS chip that was the demo before came from Planet imagery, whose terms may forbid that.
The reference outlines are the experts' consensus (slumps at least half of 10-12 experts drew).

Run: .venv/bin/python tools/make_demo_scene.py [SHARED]   (or `make demo-scene`)
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Tuple

import numpy as np
import rasterio
from rasterio.enums import ColorInterp

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = Path(os.environ.get("SHARED", REPO.parent / "shared"))
SITE = "Peel"
SOURCE_SCENE = "Peel_S2_20210821.tif"
RGB_BANDS = (3, 2, 1)  # B4, B3, B2
STRETCH_PCT = (0.5, 99.5)
SCENE_NAME = "peel_plateau_s2_20210821_rgb.tif"
REFERENCE_NAME = "peel_plateau_reference_outlines.geojson"
ATTRIBUTION = "Contains modified Copernicus Sentinel data 2021"
SOURCE_NOTE = (
    f"{ATTRIBUTION}. Sentinel-2 L2A, Peel Plateau (Canada), 2021-08-21, bands B4,B3,B2 as 8-bit RGB; "
    "clip from initze/RTS_digitization_experiment (MIT)."
)


def stretched_rgb(reflectance: np.ndarray, nodata: float) -> np.ndarray:
    """uint16 reflectance (bands, rows, cols) as 8-bit RGB 1..255, 0 where any band is nodata."""
    valid = np.all(reflectance != nodata, axis=0)
    out = np.zeros(reflectance.shape, dtype=np.uint8)
    for i, band in enumerate(reflectance.astype(np.float64)):
        low, high = np.percentile(band[valid], STRETCH_PCT)
        scaled = 1 + 254 * np.clip((band - low) / max(high - low, 1e-9), 0, 1)
        out[i] = np.where(valid, np.rint(scaled), 0).astype(np.uint8)
    return out


def write_scene(source: Path, out: Path) -> Path:
    with rasterio.open(source) as src:
        data = stretched_rgb(src.read(list(RGB_BANDS)), src.nodata if src.nodata is not None else 0)
        profile = {
            "driver": "GTiff", "dtype": "uint8", "count": 3, "width": src.width, "height": src.height,
            "crs": src.crs, "transform": src.transform, "nodata": 0, "compress": "deflate", "photometric": "RGB",
        }
    partial = out.with_name(out.name + ".partial")
    with rasterio.open(partial, "w", **profile) as dst:
        dst.write(data)
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        dst.update_tags(source=SOURCE_NOTE, attribution=ATTRIBUTION)
    partial.replace(out)
    return out


def write_reference(source: Path, out: Path) -> Path:
    """The consensus outlines as they are, with a source note (RFC 7946 readers ignore it)."""
    collection = json.loads(source.read_text())
    collection["name"] = "Peel Plateau expert consensus thaw slump outlines"
    collection["source"] = "initze/RTS_digitization_experiment (MIT); drawn on Copernicus Sentinel-2 data 2021"
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(collection))
    partial.replace(out)
    return out


def main(shared: Path = DEFAULT_SHARED, demo: Path = REPO / "demo") -> Tuple[Path, Path]:
    site = shared / "data" / "sentinel2_sites"
    demo.mkdir(parents=True, exist_ok=True)
    return (write_scene(site / SOURCE_SCENE, demo / SCENE_NAME),
            write_reference(site / f"{SITE}_consensus.geojson", demo / REFERENCE_NAME))


if __name__ == "__main__":
    for written in main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SHARED):
        print(written)
