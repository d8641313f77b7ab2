"""Wall clock of the default fine-tune (`make train` with no options) at the outside check's size.

The outside check trains on 678 + 78 chips of one region. No such open set exists, so this
copies the real chips (default: the Arctic chips that `make chips` builds) under new names
until there are that many, keeping each copy's image and mask. The copies teach nothing new;
what they give is the real cost of the default recipe at that size: chip loading, batch
building, steps, validation and calibration, on this machine's device (CUDA when present).

It runs the default recipe for a few epochs only and projects the full schedule from the
measured seconds per step (the default stops at its epochs or its time budget, whichever
comes first). Batch building is timed alone too, on one thread, to show whether the network
waits for its batches.

  .venv/bin/python tools/bench_finetune.py out/arctic_chips --train 678 --val 78 --epochs 2 --json out/bench_finetune.json
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def replicate_chips(source: Path, target: Path, n_train: int, n_val: int) -> Path:
    """``target``: ``n_train`` train and ``n_val`` val copies of the chips in ``source``."""
    from thaw_slump_mapper.core.chip_format import MANIFEST_COLUMNS, MANIFEST_NAME, read_manifest

    records = read_manifest(source)
    if target.exists():
        shutil.rmtree(target)
    (target / "images").mkdir(parents=True)
    (target / "masks").mkdir()
    rows = []
    for k in range(n_train + n_val):
        record = records[k % len(records)]
        image, mask = f"images/c{k:04d}_{Path(record.image).name}", f"masks/c{k:04d}_{Path(record.mask).name}"
        shutil.copyfile(source / record.image, target / image)
        shutil.copyfile(source / record.mask, target / mask)
        rows.append([image, mask, "train" if k < n_train else "val", record.slump_pixels, record.source, record.gsd])
    with open(target / MANIFEST_NAME, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)
    return target


def batch_seconds(chips_folder: Path, device: str, batches: int = 5) -> dict:
    """Median seconds to build one default batch on one thread (no network)."""
    from thaw_slump_mapper.core.checkpoint import bundled_checkpoint_path, load_checkpoint
    from thaw_slump_mapper.model.training import fine_tune_settings
    from thaw_slump_mapper.model.training_start import load_training_chips, median_gsd, split_chips
    from thaw_slump_mapper.model.training_steps import batch_maker, effective_crop_size

    settings = fine_tune_settings(device=device)
    ckpt = load_checkpoint(bundled_checkpoint_path())
    started = time.perf_counter()
    chips = load_training_chips([chips_folder], ckpt)
    load_s = time.perf_counter() - started
    gsd = median_gsd(chips)
    train, _ = split_chips(chips, settings.val_share, settings.seed)
    settings.crop_size = effective_crop_size(train, gsd, settings)
    make_batch = batch_maker(train, gsd, ckpt.scaling, settings, np.random.default_rng(0))
    make_batch()
    times = []
    for _ in range(batches):
        t0 = time.perf_counter()
        make_batch()
        times.append(time.perf_counter() - t0)
    return {"load_s": load_s, "batch_s": float(np.median(times)), "batch_size": settings.batch_size, "crop": settings.crop_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chips", type=Path, help="a chip folder to copy (default recipe's input format)")
    parser.add_argument("--train", type=int, default=678)
    parser.add_argument("--val", type=int, default=78)
    parser.add_argument("--epochs", type=int, default=2, help="epochs actually run; the full schedule is projected")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None, help="batch threads (default: the recipe's choice)")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "bench_finetune")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from thaw_slump_mapper.core.devices import cuda_name, resolve_device
    from thaw_slump_mapper.model.training import fine_tune, fine_tune_settings

    device = resolve_device(args.device)
    folder = replicate_chips(args.chips, args.work / "chips", args.train, args.val)
    built = batch_seconds(folder, device)
    defaults = fine_tune_settings(device=device)
    started = time.perf_counter()
    result = fine_tune([folder], args.work / "finetuned.pt", device=device, epochs=args.epochs, prefetch_workers=args.workers)
    total_s = time.perf_counter() - started
    history = result.history
    steps = int(history[-1]["step"])
    epoch_s = [round(b["elapsed_s"] - a["elapsed_s"], 1) for a, b in zip([{"elapsed_s": 0.0}] + history, history)]
    fit_s = float(history[-1]["elapsed_s"])
    per_step = fit_s / max(1, steps)
    steps_per_epoch = -(-result.n_train // defaults.batch_size)
    full_steps = defaults.epochs * steps_per_epoch
    budget_s = (defaults.max_minutes or 0) * 60 or float("inf")
    projected_fit = min(full_steps * per_step, budget_s)
    rest_s = total_s - fit_s  # loading, calibration, saving
    report = {
        "machine": platform.node(), "cpu_cores": os.cpu_count(), "gpu": cuda_name(), "device": device,
        "chips": {"train": result.n_train, "val": result.n_val, "copied_from": str(args.chips)},
        "recipe": {"batch_threads": result.checkpoint.provenance["recipe"].get("batch_threads_used"),
                   "batch": defaults.batch_size, "crop": built["crop"], "epochs": defaults.epochs,
                   "budget_min": defaults.max_minutes, "precision": result.checkpoint.provenance["recipe"].get("precision_used")},
        "measured": {"epochs": args.epochs, "steps": steps, "fit_s": round(fit_s, 1), "total_s": round(total_s, 1),
                     "epoch_s": epoch_s, "s_per_step": round(per_step, 4), "crops_per_s": round(defaults.batch_size / per_step, 1),
                     "batch_build_s_one_thread": round(built["batch_s"], 4), "chip_load_s": round(built["load_s"], 1),
                     "load_calibrate_save_s": round(rest_s, 1)},
        "projected_default": {"steps": full_steps, "fit_min": round(projected_fit / 60, 1),
                              "stops_on": "budget" if full_steps * per_step > budget_s else "epochs",
                              "total_min": round((projected_fit + rest_s) / 60, 1)},
        "val_metrics": {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))},
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)


if __name__ == "__main__":
    main()
