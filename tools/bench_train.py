"""Training throughput: the default fine-tuning recipe against the recipe of 2026-11-25.

In ONE process, on the real Arctic chips (../shared/data, built into the chip format), it
times training steps of:
  * baseline: today's recipe before this change: fp32, contiguous layout, batches built in
    the training loop, crop 192, batch 8, the old fine-tune augmentation;
  * new default at the same crop size (the like-for-like figure the 3x target is about), in
    its two phases: the optional encoder warm-up (whole encoder fixed, the first
    ``encoder_warmup_share`` of the run; 0 by default since the equal-wall-clock experiment in
    docs/TRAINING.md, its step is still timed) and the main phase (stem + 2 stages fixed). A run
    spends that share of its wall clock in each, so the recipe's crops per second are the
    time-weighted mean of the two;
  * new default at its own crop size, the same way.
Rounds alternate (baseline, new, new-at-own-size, baseline, ...) because these machines are
noisy, and each figure is the median over its rounds. Results go to BENCHMARKS.md between
markers.

  .venv/bin/python tools/bench_train.py --rounds 5 --steps 6 --output BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bench-train:begin -->", "<!-- bench-train:end -->"


def _recipes():
    """name -> (settings, encoder fixed for the whole timing)."""
    from thaw_slump_mapper.model.augment import AugmentSettings
    from thaw_slump_mapper.model.training import fine_tune_settings

    new = fine_tune_settings()
    # The fine-tune defaults as they were before this benchmark existed (commit b5d9465).
    old = replace(new, precision="fp32_contiguous", prefetch=False, crop_size=192, batch_size=8, loss="bce_dice", frozen_stages=0,
                  encoder_warmup_share=0.0, fast_depthwise_backward=False,
                  augment=AugmentSettings(degrade_prob=0.1, degrade_max_gsd=0.0, mosaic_prob=0.0))
    same = replace(new, crop_size=old.crop_size)
    return {
        BASELINE: (old, False),
        f"new default at crop {old.crop_size}: encoder warm-up phase": (same, True),
        f"new default at crop {old.crop_size}: main phase": (same, False),
        f"new default at crop {old.crop_size}, main phase without frozen stages": (replace(same, frozen_stages=0), False),
        f"new default (crop {new.crop_size}): encoder warm-up phase": (new, True),
        f"new default (crop {new.crop_size}): main phase": (new, False),
    }


BASELINE = "baseline (recipe of 2026-11-25: fp32, contiguous, inline batches)"
BASELINE_DECODER_CHANNELS = 256


def _blended(recipes: dict, seconds: Dict[str, List[float]], prefix: str) -> tuple:
    """(settings, crops/s) of a two-phase recipe: the wall clock splits by the warm-up share."""
    warm, main = f"{prefix}: encoder warm-up phase", f"{prefix}: main phase"
    settings = recipes[main][0]
    share = settings.encoder_warmup_share
    crops = share * settings.batch_size / statistics.median(seconds[warm]) + (1 - share) * settings.batch_size / statistics.median(seconds[main])
    return settings, crops


def _time_steps(settings, encoder_fixed: bool, chips, base, gsd: float, steps: int) -> float:
    """Seconds per step after two warm-up steps (oneDNN picks kernels on first use)."""
    import torch

    from thaw_slump_mapper.model.batch_prefetch import BatchPrefetcher, prefetch_pays
    from thaw_slump_mapper.model.losses import loss_function
    from thaw_slump_mapper.model.precision import Precision, choose_precision
    from thaw_slump_mapper.model.training_steps import batch_maker, freeze_whole_encoder, train_mode, train_step, training_network

    # the baseline as it ran before this benchmark: fp32 in the default (contiguous) layout
    contiguous = settings.precision == "fp32_contiguous"
    precision = Precision("cpu", "fp32", channels_last=False) if contiguous else choose_precision("cpu", settings.precision)
    net = training_network(base, settings, precision)
    optimiser = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    if encoder_fixed:
        freeze_whole_encoder(net)
    train_mode(net)
    make_batch = batch_maker(chips, gsd, base.scaling, settings, np.random.default_rng(0))
    loss_fn = loss_function(settings.loss, settings.positive_weight)
    use_prefetch = prefetch_pays("cpu", torch.get_num_threads()) if settings.prefetch is None else settings.prefetch
    prefetch = BatchPrefetcher(make_batch) if use_prefetch else None
    try:
        for i in range(steps + 2):
            if i == 2:
                started = time.perf_counter()
            x, y = prefetch.next() if prefetch else make_batch()
            train_step(net, optimiser, None, precision, loss_fn, x, y, "cpu")
    finally:
        if prefetch:
            prefetch.close()
    return (time.perf_counter() - started) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--output", type=Path, default=None, help="BENCHMARKS.md to update between markers")
    args = parser.parse_args()
    import torch

    from thaw_slump_mapper.model.arctic_chips_builder import build_arctic_chips
    from thaw_slump_mapper.model.batch_prefetch import prefetch_pays
    from thaw_slump_mapper.model.precision import choose_precision
    from thaw_slump_mapper.model.training_start import imagenet_checkpoint, load_training_chips

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    shared = Path(os.environ.get("SHARED", REPO.parent / "shared"))
    with tempfile.TemporaryDirectory() as tmp:
        build_arctic_chips(shared / "data" / "arctic_rts_chips", Path(tmp) / "chips")
        # The default fine-tune trains the bundled checkpoint's network; the baseline trained the
        # bundled network of its day, DeepLabV3+ with smp's default 256-channel decoder.
        base = imagenet_checkpoint()
        old_base = imagenet_checkpoint(decoder_channels=BASELINE_DECODER_CHANNELS)
        chips = load_training_chips([Path(tmp) / "chips"], base)
    recipes = _recipes()
    seconds: Dict[str, List[float]] = {name: [] for name in recipes}
    for r in range(args.rounds):
        for name, (settings, encoder_fixed) in recipes.items():
            s = _time_steps(settings, encoder_fixed, chips, old_base if name == BASELINE else base, 3.0, args.steps)
            seconds[name].append(s)
            print(f"round {r + 1}: {name}: {s:.2f} s/step", file=sys.stderr)
    old = recipes[BASELINE][0]
    base_crops = old.batch_size / statistics.median(seconds[BASELINE])
    base_px = base_crops * old.crop_size**2
    new = next(settings for name, (settings, _) in recipes.items() if name.startswith("new default (crop"))
    lines = [
        f"Run: `make bench-train` on {platform.node()} ({os.cpu_count()} CPU cores, no GPU), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.rounds} alternating rounds of {args.steps} steps "
        f"(after 2 warm-up steps) per row, median shown. Network: DeepLabV3+ lite0 with the bundled checkpoint's "
        f"{base.architecture['kwargs'].get('decoder_channels', BASELINE_DECODER_CHANNELS)}-channel decoder "
        f"(baseline: {BASELINE_DECODER_CHANNELS}, the bundled network of its day), 16 real Arctic chips at 3 m. "
        f"New default here: {choose_precision('cpu').name}, channels_last, batches "
        f"{'prefetched' if prefetch_pays('cpu', torch.get_num_threads()) else 'built inline (no core free for a batch thread)'}, "
        f"the depthwise convolutions' fast backward (model/fast_depthwise.py); "
        + (f"the first {new.encoder_warmup_share:.0%} of the run with the whole encoder fixed, then the stem + {new.frozen_stages} stages fixed."
           if new.encoder_warmup_share > 0 else
           f"the encoder trains from the first step with its stem + {new.frozen_stages} stages fixed (no encoder warm-up: "
           f"the warm-up rows time the optional phase, which the whole-run rows weight by its share, 0 %)."),
        "",
        "| recipe | crop px | batch | s/step | crops/s | Mpx/s | x baseline (crops/s) | x baseline (px/s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def row(name: str, settings, crops: float, sps: str) -> str:
        px = crops * settings.crop_size**2
        return (f"| {name} | {settings.crop_size} | {settings.batch_size} | {sps} | {crops:.2f} | {px / 1e6:.3f} | "
                f"{crops / base_crops:.2f} | {px / base_px:.2f} |")

    for name, (settings, _) in recipes.items():
        sps = statistics.median(seconds[name])
        lines.append(row(name, settings, settings.batch_size / sps, f"{sps:.2f}"))
    for prefix in (f"new default at crop {old.crop_size}", f"new default (crop {new.crop_size})"):
        settings, crops = _blended(recipes, seconds, prefix)
        lines.append(row(f"**{prefix}, whole run** (time-weighted phases)", settings, crops, "-"))
    table = "\n".join(lines)
    print(table)
    if args.output:
        text = args.output.read_text() if args.output.exists() else "# Benchmarks\n"
        block = f"{BEGIN}\n\n{table}\n\n{END}"
        if BEGIN in text:
            text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
        else:
            text = text.rstrip() + "\n\n## Training throughput (`make bench-train`)\n\n" + block + "\n"
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
