"""Training-step time of narrower DeepLabV3+ decoders and more frozen encoder stages, against
the bench-train baseline, in one process (alternating rounds, median).

A what-if for the 3x target of `make bench-train`. The bundled checkpoint (the default start) has
a 128-channel decoder since v3.0.0 (256 before); the other rows are not defaults.

  .venv/bin/python tools/bench_network_variants.py --rounds 2 --steps 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    import bench_train as bt
    import torch

    from thaw_slump_mapper.model.arctic_chips_builder import build_arctic_chips
    from thaw_slump_mapper.model.training_start import imagenet_checkpoint, load_training_chips

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        shared = Path(os.environ.get("SHARED", bt.REPO.parent / "shared"))
        build_arctic_chips(shared / "data" / "arctic_rts_chips", Path(tmp) / "chips")
        base = imagenet_checkpoint(decoder_channels=bt.BASELINE_DECODER_CHANNELS)
        chips = load_training_chips([Path(tmp) / "chips"], base)
    recipes = bt._recipes()
    old, _ = recipes[bt.BASELINE]
    main_phase, _ = recipes["new default at crop 192: main phase"]
    narrow = imagenet_checkpoint(decoder_channels=128)
    runs = {
        "baseline": (old, base),
        "default main phase, decoder 256": (main_phase, base),
        "decoder 128": (main_phase, narrow),
        "decoder 64": (main_phase, imagenet_checkpoint(decoder_channels=64)),
        "decoder 128, 5 stages fixed": (replace(main_phase, frozen_stages=5), narrow),
        "decoder 256, bf16": (replace(main_phase, precision="bf16"), base),
        "decoder 128, bf16": (replace(main_phase, precision="bf16"), narrow),
        "decoder 128, bf16, 3 stages fixed": (replace(main_phase, precision="bf16", frozen_stages=3), narrow),
    }
    seconds: Dict[str, List[float]] = {}
    for _ in range(args.rounds):
        for name, (settings, ckpt) in runs.items():
            seconds.setdefault(name, []).append(bt._time_steps(settings, False, chips, ckpt, 3.0, args.steps))
    reference = statistics.median(seconds["baseline"])
    print("| crop 192, batch 8 | s/step | x baseline |\n| --- | --- | --- |")
    for name, values in seconds.items():
        print(f"| {name} | {statistics.median(values):.3f} | {reference / statistics.median(values):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
