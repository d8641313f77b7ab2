"""Does the inference tile change what a fine-tuned fold model finds?

Each stored fold model of `tools/train_experiments.py` (recipe `--recipe`, default
new_imagenet) predicts a 4 x 4 mosaic of its own held-out Arctic chips (cycled, flipped at
random) with several tile sizes, overlap a quarter of the tile, and then each chip alone.
Every chip is stretched on its own before it goes into the mosaic, as training stretches it,
so that only the tiling differs between the rows. Scores: pixel IoU at threshold 0.5, and
instance F1 under the paper's rule (IoU > 0.5) at 0.5 / 1000 m2, from the evaluate command's
code (`model/calibration.score_grid`).

    .venv/bin/python tools/train_experiments.py --recipes new_imagenet --folds arctic1 arctic2 arctic3 arctic4 --steps 320
    .venv/bin/python tools/tile_context.py
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import train_experiments  # noqa: E402  (tools/ is not a package)

from thaw_slump_mapper.core.chip_format import LoadedChip  # noqa: E402
from thaw_slump_mapper.core.scaling import compute_stretch  # noqa: E402
from thaw_slump_mapper.model.calibration import predict_chips, score_grid  # noqa: E402
from thaw_slump_mapper.model.training_start import imagenet_checkpoint, load_training_chips  # noqa: E402

TILES = ((512, 128), (256, 64), (192, 48))
THRESHOLD, MIN_AREA_M2 = 0.5, 1000.0


def prestretched(chip: LoadedChip, scaling: Dict) -> np.ndarray:
    """The chip's bands mapped to 0-1 by its own percentile stretch (what training feeds)."""
    stretch = compute_stretch(chip.image, chip.valid, scaling)
    span = (stretch.high - stretch.low)[:, None, None]
    return np.clip((chip.image - stretch.low[:, None, None]) / span, 0.0, 1.0).astype(np.float32)


def mosaic_of(chips: List[LoadedChip], scaling: Dict, side: int, seed: int) -> LoadedChip:
    """A side x side mosaic of the chips (cycled; each flipped at random), pre-stretched."""
    rng = np.random.default_rng(seed)
    h, w = chips[0].mask.shape
    image = np.zeros((chips[0].image.shape[0], side * h, side * w), np.float32)
    valid = np.zeros((side * h, side * w), bool)
    mask = np.zeros((side * h, side * w), np.uint8)
    for k in range(side * side):
        chip = chips[k % len(chips)]
        a, v, m = prestretched(chip, scaling), chip.valid, chip.mask
        if rng.random() < 0.5:
            a, v, m = a[:, :, ::-1], v[:, ::-1], m[:, ::-1]
        if rng.random() < 0.5:
            a, v, m = a[:, ::-1], v[::-1], m[::-1]
        r, c = divmod(k, side)
        window = (slice(r * h, (r + 1) * h), slice(c * w, (c + 1) * w))
        image[(slice(None),) + window], valid[window], mask[window] = a, v, m
    return replace(chips[0], name="mosaic", image=image, valid=valid, mask=mask)


def scores(ckpt, chips: List[LoadedChip]) -> Dict[str, float]:
    """Pixel IoU and instance TP/FP/FN/F1 at the fixed threshold and minimum area."""
    at = score_grid(predict_chips(ckpt, chips, "cpu"), [THRESHOLD], [MIN_AREA_M2])[(THRESHOLD, MIN_AREA_M2)]
    return {"pixel_iou": round(float(at["pixel_iou"]), 3), "f1": round(float(at["f1"]), 3),
            "tp": at["tp"], "fp": at["fp"], "fn": at["fn"]}


def run(experiments: Path, recipe: str, fold_names: Sequence[str], seed: int) -> List[Dict]:
    probe = imagenet_checkpoint()
    arctic = load_training_chips([experiments / "chips" / "arctic"], probe)
    s2 = load_training_chips([experiments / "chips" / "s2"], probe)
    rows = []
    for fold, _train, test in train_experiments.folds(arctic, s2):
        state = experiments / recipe / f"{fold}.state.pt"
        if fold not in fold_names or not state.exists():
            continue
        chip_ckpt = imagenet_checkpoint(gsd_m=3.0)
        chip_ckpt.state_dict = torch.load(state, weights_only=True)
        # the mosaic is already stretched per chip, so the network's scaling is the identity stretch
        bands = len(chip_ckpt.bands)
        mosaic_ckpt = replace(chip_ckpt, scaling=dict(chip_ckpt.scaling, method="fixed", min=[0.0] * bands,
                                                      max=[1.0] * bands))
        mosaic = mosaic_of(test, chip_ckpt.scaling, 4, seed)
        for tile, overlap in TILES:
            row = {"fold": fold, "input": "mosaic", "tile": tile, "overlap": overlap}
            row.update(scores(replace(mosaic_ckpt, tile_size=tile, overlap=overlap), [mosaic]))
            rows.append(row)
            print(json.dumps(row), flush=True)
        row = {"fold": fold, "input": "each chip alone", "tile": "fitted", "overlap": ""}
        row.update(scores(chip_ckpt, test))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=Path, default=REPO / "out" / "experiments",
                        help="the --output folder of tools/train_experiments.py")
    parser.add_argument("--recipe", default="new_imagenet")
    parser.add_argument("--folds", nargs="+", default=["arctic1", "arctic2", "arctic3", "arctic4"])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = run(args.experiments, args.recipe, args.folds, args.seed)
    if not rows:
        print(f"No fold models under {args.experiments / args.recipe}: run tools/train_experiments.py first.")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
