"""Parity of the shipped ONNX graph (float16-stored weights, float32 arithmetic) with the
float32 graph exported from the .pt: probabilities on all 16 real ARTS chips and the Sentinel-2
demo scene, through the engine's own tiling and blending.

    .venv/bin/python tools/onnx_parity.py      (or `make onnx-parity`; needs torch)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import rasterio

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED", REPO.parent / "shared"))


def main() -> int:
    sys.path.insert(0, str(REPO.parent))
    from thaw_slump_mapper.core.checkpoint import bundled_checkpoint_path, load_checkpoint
    from thaw_slump_mapper.engine.inference import predict_array
    from thaw_slump_mapper.engine.onnx_model import load_onnx_checkpoint

    full = load_checkpoint(bundled_checkpoint_path())  # torch: the float32 export
    light = load_onnx_checkpoint(bundled_checkpoint_path())  # the shipped graph
    images = sorted((SHARED / "data" / "arctic_rts_chips" / "chips").glob("*.tif"))
    images.append(REPO / "demo" / "peel_plateau_s2_20210821_rgb.tif")
    from thaw_slump_mapper.engine.tiling import fit_tile_size

    worst, flipped, pixels, tiles = 0.0, 0, 0, set()
    for path in images:
        with rasterio.open(path) as src:
            image = src.read([1, 2, 3]).astype(np.float32)
        image[~np.isfinite(image)] = 0
        tiles.add(fit_tile_size(image.shape[1], image.shape[2], full.tile_size))
        a = predict_array(full, image, backend="onnxruntime", device="cpu")
        b = predict_array(light, image, backend="onnxruntime", device="cpu")
        worst = max(worst, float(np.abs(a - b).max()))
        flipped += int(((a >= full.threshold) != (b >= full.threshold)).sum())
        pixels += a.size
    print(f"{len(images)} real images, {pixels} px, tile sizes {sorted(tiles)}:")
    print(f"max |p_fp16-stored - p_fp32| = {worst:.5f}; pixels whose mask changes at threshold {full.threshold}: {flipped} ({flipped / pixels:.6%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
