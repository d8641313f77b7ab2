"""Small checkpoints of the real format for tests (the trained one is too slow per test)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from thaw_slump_mapper.core.checkpoint import Checkpoint, build_network, new_checkpoint, save_checkpoint
from thaw_slump_mapper.core.scaling import default_scaling

TINY_ARCHITECTURE = {
    "class": "Unet",
    "kwargs": {"encoder_name": "mobilenet_v2", "encoder_depth": 3, "decoder_channels": [16, 8, 8], "in_channels": 3, "classes": 1},
}


def make_tiny_checkpoint(
    path: Path,
    gsd_m: float = 2.0,
    bands: Sequence[str] = ("red", "green", "blue"),
    tile_size: int = 128,
    overlap: int = 32,
    seed: int = 0,
    min_area_m2: float = 0.0,
) -> Path:
    torch.manual_seed(seed)
    arch = {"class": TINY_ARCHITECTURE["class"], "kwargs": dict(TINY_ARCHITECTURE["kwargs"], in_channels=len(bands))}
    stub = Checkpoint(architecture=arch, bands=list(bands), gsd_m=gsd_m, scaling=default_scaling(bands))
    net = build_network(stub, load_weights=False)
    ckpt = new_checkpoint(
        net, arch, list(bands), gsd_m, default_scaling(bands),
        tile_size=tile_size, overlap=overlap, threshold=0.5, min_area_m2=min_area_m2,
        version="0.0.1", name="tiny-test-model",
        provenance={"trained": False, "training_data": [], "metrics": {}},
    )
    return save_checkpoint(ckpt, path)
