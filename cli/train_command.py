"""`train`: fine-tune a checkpoint on chip folders (or reproduce the bundled model)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..model.fine_tune_defaults import (
    FINE_TUNE_EPOCHS,
    FINE_TUNE_LEARNING_RATE,
    FINE_TUNE_MINUTES_CPU,
    FINE_TUNE_MINUTES_CUDA,
    TRAIN_SEED,
)
from ..model.precision import PRECISION_CHOICES
from .interrupts import cli_progress
from .progress_bar import TextProgressBar


def register(subparsers: "argparse._SubParsersAction") -> None:
    p = subparsers.add_parser(
        "train",
        help="fine-tune the model on your own chip folders",
        description=(
            "Fine-tune a checkpoint (the bundled one by default) on one or more training-chip folders "
            "(images/, masks/, manifest.csv, as written by export-labels). By default it stops within "
            "30 minutes on a 2-core CPU (loading and calibration included), shows the time left, "
            "keeps the weights with the best validation IoU, takes the "
            "chips' ground sample distance and tunes the threshold and minimum area on the validation chips."
        ),
    )
    p.add_argument("data", type=Path, nargs="+", help="training-chip folder(s)")
    p.add_argument("--output", "-o", type=Path, required=True, help="new checkpoint (.pt)")
    p.add_argument(
        "--base",
        type=Path,
        default=None,
        help="checkpoint to start from (default: the bundled model; 'imagenet': ImageNet encoder weights)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"most passes over the training chips (default {FINE_TUNE_EPOCHS}; on a CPU the time budget ends training first)",
    )
    p.add_argument("--learning-rate", type=float, default=None, help=f"peak learning rate (default {FINE_TUNE_LEARNING_RATE:g})")
    p.add_argument("--val-share", type=float, default=None, help="share of chips kept for validation (default: the manifest's val rows, else 0.15)")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help=f"wall-clock budget for training before calibration "
        f"(default {FINE_TUNE_MINUTES_CPU:g} on a CPU, {FINE_TUNE_MINUTES_CUDA:g} on CUDA)",
    )
    p.add_argument(
        "--gsd",
        type=float,
        default=None,
        help="the network's working ground sample distance in m (default: the chips' median GSD); chips are resampled to it",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto: CUDA when present)")
    p.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=None,
        help="numeric precision of training (default auto: bf16 on a CPU with bf16 kernels, else fp32; bf16 or fp16 on CUDA; "
        "bf16-decoder: the decoder alone in bf16, docs/TRAINING.md)",
    )
    p.add_argument("--seed", type=int, default=None, help=f"random seed (default {TRAIN_SEED})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --output")
    p.add_argument(
        "--bundled-recipe",
        action="store_true",
        help="train from ImageNet weights with the bundled model's recipe (DATA = the Arctic and Sentinel-2 chip folders)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.output_safety import check_file_output
    from ..model.bundled_recipe import train_bundled
    from ..model.training import fine_tune

    # Checked before hours of training, not after: never the base checkpoint, never a chip folder.
    check_file_output(args.output, "checkpoint", (".pt",), [args.base, *args.data], args.overwrite)
    bar = TextProgressBar("train")
    try:
        if args.bundled_recipe:
            result = train_bundled(args.data, args.output, cli_progress(bar), device=args.device)
        else:
            result = fine_tune(
                args.data, args.output, base_checkpoint=args.base, epochs=args.epochs, learning_rate=args.learning_rate,
                val_share=args.val_share, max_minutes=args.max_minutes, device=args.device, progress=cli_progress(bar), seed=args.seed,
                precision=args.precision, gsd_m=args.gsd,
            )
    finally:
        bar.close()
    ckpt = result.checkpoint
    print(f"trained on {result.n_train} chips, validated on {result.n_val}, in {result.elapsed_s / 60:.1f} min", file=sys.stderr)
    print(f"checkpoint: {result.checkpoint_path}")
    print(f"  {ckpt.summary()}")
    print(f"  threshold {ckpt.threshold:g}, minimum area {ckpt.min_area_m2:g} m2, GSD {ckpt.gsd_m:g} m")
    if ckpt.validation_line():
        print(f"  {ckpt.validation_line()} at threshold {ckpt.threshold:g}, minimum area {ckpt.min_area_m2:g} m2")
    if result.metrics:
        print("  all validation metrics: " + ", ".join(f"{k} {v}" for k, v in result.metrics.items()))
    return 0
