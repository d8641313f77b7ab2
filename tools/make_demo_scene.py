"""Derive the bundled demo scene from a real chip in ../shared/data (MIT, Woodwell).

The chip's RGB bands become an 8-bit GeoTIFF (band 4, the uncorrected outline, is dropped;
unimaged pixels become nodata 0). Run: .venv/bin/python tools/make_demo_scene.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp

REPO = Path(__file__).resolve().parent.parent
CHIP = "811a1621-d78c-5331-86dd-f9d9020548f5.tif"


def main(shared: Path = REPO.parent / "shared") -> Path:
    src_path = shared / "data" / "arctic_rts_chips" / "chips" / CHIP
    out = REPO / "demo" / "arctic_rts_demo_scene.tif"
    with rasterio.open(src_path) as src:
        rgb = src.read([1, 2, 3])
        valid = np.all(np.isfinite(rgb), axis=0)
        data = np.where(valid, np.clip(np.rint(rgb), 1, 255), 0).astype(np.uint8)
        profile = {
            "driver": "GTiff", "dtype": "uint8", "count": 3, "width": src.width, "height": src.height,
            "crs": src.crs, "transform": src.transform, "nodata": 0, "compress": "deflate", "photometric": "RGB",
        }
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        dst.update_tags(source=f"ARTS training chip {CHIP}, Woodwell Climate Research Center (MIT licence)")
    return out


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared"))
