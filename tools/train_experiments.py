"""Recipe experiments behind docs/TRAINING.md: cross-validated, on every open labelled source.

Folds:
  * arctic: the 16 Arctic 2 m chips (seen at 3 m), 4 folds of 4 chips;
  * s2: the two Copernicus Sentinel-2 sites (10 m), one fold per site (train on one site,
    and on the Arctic chips when the recipe says so, test on the other).
Each (recipe, fold) trains for a fixed number of steps (equal work, so recipes compare on
content; speed is measured apart in `make bench-train`), predicts the held-out chips
through the detection engine and stores the probabilities, so outline post-processing
and calibration can be compared afterwards on the same predictions.

  .venv/bin/python tools/train_experiments.py --recipes new_imagenet old_imagenet --steps 60 \
      --output out/experiments
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def recipes() -> Dict[str, Tuple[str, Callable[[], Any]]]:
    """name -> (start, settings factory)."""
    from thaw_slump_mapper.model.augment import AugmentSettings
    from thaw_slump_mapper.model.training import fine_tune_settings

    def new(**kw: Any):
        return replace(fine_tune_settings(), max_minutes=None, val_share=0.0, calibrate=False, **kw)

    def old(**kw: Any):
        return replace(new(), precision="fp32", prefetch=False, crop_size=192, learning_rate=5e-4, warmup_steps=20, frozen_stages=0,
                       augment=AugmentSettings(degrade_prob=0.1, degrade_max_gsd=0.0, mosaic_prob=0.0), **kw)

    def bundled(**kw: Any):
        from thaw_slump_mapper.model.bundled_recipe import bundled_settings

        return replace(bundled_settings(), **kw)

    return {
        "new_imagenet": ("imagenet", lambda: new()),
        # the bundled model's recipe (fp32, crop 224, resolution imitation, mosaics) on the fold's chips;
        # run it with --steps 800, its own length
        "bundled_recipe": ("imagenet", lambda: bundled()),
        # the default fine-tune from the fold's own bundled_recipe model (run that first on the fold's
        # arctic twin), on the *_10m folds: at the chips' 10 m against at the base's 3 m
        "finetune_fold_base_chips_gsd": ("fold_base", lambda: new()),
        "finetune_fold_base_base_gsd": ("fold_base", lambda: new(gsd_m=3.0)),
        "finetune_fold_base_chips_gsd_posweight1": ("fold_base", lambda: new(positive_weight=1.0)),
        # the same recipe as new_imagenet since session 8 made no warm-up the default; kept by name
        # because the commands in docs/TRAINING.md name it
        "new_imagenet_no_warmup": ("imagenet", lambda: new(encoder_warmup_share=0.0)),
        # the fine-tune default until session 8 (new_imagenet ran it in the experiments before)
        "new_imagenet_warmup60": ("imagenet", lambda: new(encoder_warmup_share=0.6)),
        # the warm-up share at equal steps: a warm-up step costs about half a main-phase one
        "new_imagenet_warmup90": ("imagenet", lambda: new(encoder_warmup_share=0.9)),
        "new_imagenet_lovasz": ("imagenet", lambda: new(loss="bce_lovasz")),
        "new_imagenet_posweight1": ("imagenet", lambda: new(positive_weight=1.0)),
        "new_imagenet_tversky": ("imagenet", lambda: new(loss="focal_tversky")),
        # wider scale jitter (log-uniform 0.6-1.4x against 0.8-1.2x): fold models predicting 1.5x coarser
        # than they trained lost most of their pixel IoU (session 18), so they learn sizes in pixels
        "new_imagenet_scale40": ("imagenet", lambda: new(augment=replace(new().augment, scale_jitter=0.4))),
        "finetune_fold_base_chips_gsd_scale40": ("fold_base", lambda: new(augment=replace(new().augment, scale_jitter=0.4))),
        "new_imagenet_crop192": ("imagenet", lambda: new(crop_size=192)),
        # bf16 autocast over the whole network: faster where the CPU has AMX (BENCHMARKS.md)
        "new_imagenet_bf16": ("imagenet", lambda: new(precision="bf16", encoder_warmup_share=0.6)),  # as measured, beside warmup60
        # the network's working GSD on the Sentinel-2 folds: 10 m chips seen at 5 or 3 m (slumps 2-3x larger in pixels)
        "new_imagenet_gsd5": ("imagenet", lambda: new(gsd_m=5.0)),
        "new_imagenet_gsd3": ("imagenet", lambda: new(gsd_m=3.0)),
        # chips exported around slumps put them in the middle; 2x2 mosaics move them anywhere
        "new_imagenet_mosaic": ("imagenet", lambda: new(augment=replace(new().augment, mosaic_prob=0.5))),
        # the DeepLabV3+ decoder's width (NETWORK_VARIANTS): 256 was the bundled network until v3.0.0
        # (session 13 ran that row as new_imagenet, which builds the bundled network of the day)
        "new_imagenet_decoder256": ("imagenet", lambda: new()),
        "new_imagenet_decoder128": ("imagenet", lambda: new()),
        "new_imagenet_decoder64": ("imagenet", lambda: new()),
        # bf16 autocast on the 128-channel decoder (v3.0.0's network), and with one more encoder stage fixed
        "new_imagenet_decoder128_bf16": ("imagenet", lambda: new(precision="bf16")),
        "new_imagenet_decoder128_bf16_frozen3": ("imagenet", lambda: new(precision="bf16", frozen_stages=3)),
        # fewer fixed encoder stages once every slow depthwise backward was rewritten
        # (model/fast_depthwise.py, session 14): training the stem and stages 1-2 costs about 11 %
        "new_imagenet_frozen1": ("imagenet", lambda: new(frozen_stages=1)),
        "new_imagenet_frozen0": ("imagenet", lambda: new(frozen_stages=0)),
        "new_bundled": ("bundled", lambda: new()),
        "new_bundled_mosaic": ("bundled", lambda: new(augment=replace(new().augment, mosaic_prob=0.5))),
        "old_imagenet": ("imagenet", lambda: old()),
        "old_bundled": ("bundled", lambda: old()),
    }


# Recipes that change the network itself: keyword arguments of imagenet_checkpoint (from ImageNet only).
NETWORK_VARIANTS: Dict[str, Dict[str, Any]] = {
    "new_imagenet_decoder256": {"decoder_channels": 256},
    "new_imagenet_decoder128": {"decoder_channels": 128},
    "new_imagenet_decoder64": {"decoder_channels": 64},
    "new_imagenet_decoder128_bf16": {"decoder_channels": 128},
    "new_imagenet_decoder128_bf16_frozen3": {"decoder_channels": 128},
}


def coarsened(chip: Any, factor: int) -> Any:
    """The chip as a coarser sensor would see it: band means over factor x factor blocks (valid
    only where the whole block is), the slump label where at least half the block is slump, and
    ignored where at least half is ignored. Truth known, so a 10 m source built from the 2 m chips."""
    from thaw_slump_mapper.core.chip_format import MASK_IGNORE, MASK_SLUMP

    h, w = (chip.mask.shape[0] // factor) * factor, (chip.mask.shape[1] // factor) * factor

    def blocks(a: np.ndarray) -> np.ndarray:
        return a[..., :h, :w].reshape(*a.shape[:-2], h // factor, factor, w // factor, factor)

    valid = blocks(chip.valid).all(axis=(-3, -1))
    image = blocks(chip.image.astype(np.float32)).mean(axis=(-3, -1)) * valid
    slump = (blocks(chip.mask == MASK_SLUMP).mean(axis=(-3, -1)) >= 0.5)
    ignored = (blocks(chip.mask == MASK_IGNORE).mean(axis=(-3, -1)) >= 0.5)
    mask = np.where(ignored, MASK_IGNORE, slump.astype(np.uint8)).astype(np.uint8)
    return replace(chip, name=f"{chip.name}_x{factor}", image=image.astype(np.float32), valid=valid, mask=mask,
                   gsd=chip.gsd * factor)


def folds(chips_arctic: list, chips_s2: list) -> List[Tuple[str, list, list]]:
    from thaw_slump_mapper.model.cross_validation import chip_folds

    out = []
    for k, held_out in enumerate(chip_folds(len(chips_arctic), 4, 2026)):
        held = set(held_out)
        out.append((f"arctic{k + 1}", [c for i, c in enumerate(chips_arctic) if i not in held],
                    [c for i, c in enumerate(chips_arctic) if i in held]))
    for name, train, test in list(out):  # the same folds as a 10 m source (the 2 m chips coarsened 5x)
        out.append((f"{name}_10m", [coarsened(c, 5) for c in train], [coarsened(c, 5) for c in test]))
    for site in ("Peel", "Bykovsky"):
        test = [c for c in chips_s2 if c.name.startswith(site)]
        train = [c for c in chips_s2 if not c.name.startswith(site)] + list(chips_arctic)
        out.append((f"s2_{site}", train, test))
    return out


def _save(out: Path, preds: list, gsd: float, seconds: float, steps: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **{f"{i}_{k}": getattr(p, k) for i, p in enumerate(preds) for k in ("probability", "valid", "mask")},
                        gsd=gsd, seconds=seconds, steps=steps, n=len(preds))


class AverageObserver:
    """A moving average of the weights that watches a run without changing it."""

    def __init__(self, span: float) -> None:
        self.span = span
        self.average: Any = None

    def __call__(self, net: Any) -> None:
        from thaw_slump_mapper.model.weight_averaging import WeightAverage

        if self.average is None:  # first seen after step 1, which the first update replaces almost whole
            self.average = WeightAverage(net, self.span)
        self.average.update(net)


def _stored_model(recipe_dir: Path, fold: str, start: str) -> Tuple[Any, Any]:
    """The fold's stored model as a checkpoint at its working GSD, and the fold's stored run figures."""
    import torch

    from thaw_slump_mapper.core.checkpoint import bundled_checkpoint_path, load_checkpoint
    from thaw_slump_mapper.model.training_start import imagenet_checkpoint

    meta = np.load(recipe_dir / f"{fold}.npz")
    gsd = float(meta["gsd"])  # the fold model's working GSD, as trained
    network = NETWORK_VARIANTS.get(recipe_dir.name, {})
    ckpt = imagenet_checkpoint(gsd_m=gsd, **network) if start == "imagenet" else load_checkpoint(bundled_checkpoint_path())
    ckpt.state_dict, ckpt.gsd_m = torch.load(recipe_dir / f"{fold}.state.pt", weights_only=True), gsd
    return ckpt, meta


def _predict_with_tta(recipe_dir: Path, fold: str, test: list, mode: str, start: str) -> None:
    """The fold's stored model again, predicting with test-time augmentation (a recipe of its own)."""
    from thaw_slump_mapper.model.calibration import predict_chips

    out = recipe_dir.parent / f"{recipe_dir.name}+tta_{mode}" / f"{fold}.npz"
    if not (recipe_dir / f"{fold}.state.pt").exists() or out.exists():
        return
    ckpt, meta = _stored_model(recipe_dir, fold, start)
    started = time.perf_counter()
    preds = predict_chips(ckpt, test, "cpu", tta=mode)
    _save(out, preds, ckpt.gsd_m, float(meta["seconds"]), int(meta["steps"]))
    print(f"{recipe_dir.name} {fold} TTA {mode}: predicted in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


def _predict_coarser(recipe_dir: Path, fold: str, test: list, factor: float, start: str) -> None:
    """The fold's stored model on its held-out chips resampled ``factor`` x coarser than it trained, the
    probability brought back to the model's grid (bilinear). Stored twice: that pass alone
    (<recipe>+coarse<factor>) and its mean with the stored native pass (<recipe>+ms<factor>, multi-scale)."""
    import torch
    import torch.nn.functional as F
    from analyse_experiments import load_predictions

    from thaw_slump_mapper.model.calibration import ChipPrediction, predict_chips

    tag = f"{factor:g}".replace(".", "p")
    out_coarse = recipe_dir.parent / f"{recipe_dir.name}+coarse{tag}" / f"{fold}.npz"
    out_mean = recipe_dir.parent / f"{recipe_dir.name}+ms{tag}" / f"{fold}.npz"
    if not (recipe_dir / f"{fold}.state.pt").exists() or out_mean.exists():
        return
    ckpt, meta = _stored_model(recipe_dir, fold, start)
    native = load_predictions(recipe_dir / f"{fold}.npz")
    gsd = ckpt.gsd_m
    ckpt.gsd_m = gsd * factor
    coarse, mean = [], []
    for at_gsd, pred in zip(native, predict_chips(ckpt, test, "cpu")):
        back = F.interpolate(torch.from_numpy(pred.probability.astype(np.float32))[None, None], size=at_gsd.probability.shape,
                             mode="bilinear", align_corners=False)[0, 0].numpy() * at_gsd.valid
        coarse.append(ChipPrediction(back, at_gsd.valid, at_gsd.mask, gsd))
        mean.append(ChipPrediction(((back + at_gsd.probability) / 2).astype(np.float32), at_gsd.valid, at_gsd.mask, gsd))
    _save(out_coarse, coarse, gsd, float(meta["seconds"]), int(meta["steps"]))
    _save(out_mean, mean, gsd, float(meta["seconds"]), int(meta["steps"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["new_imagenet", "old_imagenet"])
    parser.add_argument("--folds", nargs="*", default=None, help="fold names (default all)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--minutes", type=float, default=None,
                        help="train each fold for this wall clock instead of --steps (equal time, not equal work)")
    parser.add_argument("--output", type=Path, default=REPO / "out" / "experiments")
    parser.add_argument("--weight-averages", nargs="*", type=float, default=[],
                        help="also predict with moving averages of the weights over these shares of the run, from the "
                             "same runs (stored as <recipe>@avg<span>)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the runs' seed (crop order and augmentation); default the recipe's")
    parser.add_argument("--tta", nargs="*", default=[], help="re-predict the stored fold models with these TTA modes (flip2, d4)")
    parser.add_argument("--coarser", nargs="*", type=float, default=[],
                        help="re-predict the stored fold models this many times coarser than they trained, alone and "
                             "averaged with their own GSD's pass (multi-scale)")
    args = parser.parse_args()
    import torch

    from thaw_slump_mapper.core.checkpoint import bundled_checkpoint_path, load_checkpoint
    from thaw_slump_mapper.model.arctic_chips_builder import build_arctic_chips
    from thaw_slump_mapper.model.calibration import predict_chips
    from thaw_slump_mapper.model.sentinel2_chips_builder import build_sentinel2_chips
    from thaw_slump_mapper.model.training import fit
    from thaw_slump_mapper.model.training_start import imagenet_checkpoint, load_training_chips

    torch.set_num_threads(2)
    shared = Path(os.environ.get("SHARED", REPO.parent / "shared")) / "data"
    data = args.output / "chips"
    if not (data / "arctic" / "manifest.csv").exists():
        build_arctic_chips(shared / "arctic_rts_chips", data / "arctic")
    if not (data / "s2" / "manifest.csv").exists():
        build_sentinel2_chips(shared / "sentinel2_sites", data / "s2")
    probe = imagenet_checkpoint()
    arctic = load_training_chips([data / "arctic"], probe)
    s2 = load_training_chips([data / "s2"], probe)
    table = recipes()
    # Fold by fold, every recipe on the fold, so a partial run still compares recipes on equal folds.
    priority = ["arctic1", "s2_Peel", "arctic2", "s2_Bykovsky", "arctic3", "arctic4"]
    for fold, train, test in sorted(folds(arctic, s2), key=lambda f: (priority.index(f[0].split("_10m")[0]), f[0])):
        if args.folds and fold not in args.folds:
            continue
        for name in args.recipes:
            start, make_settings = table[name]
            for mode in args.tta:
                _predict_with_tta(args.output / name, fold, test, mode, start)
            for factor in args.coarser:
                _predict_coarser(args.output / name, fold, test, factor, start)
            if args.tta or args.coarser:
                continue
            out = args.output / name / f"{fold}.npz"
            if out.exists():
                continue
            settings = make_settings()
            gsd = settings.gsd_m or (10.0 if fold.startswith("s2") or fold.endswith("_10m") else 3.0)
            network = NETWORK_VARIANTS.get(name, {})
            if start == "fold_base":  # the bundled recipe trained on this fold's training chips only
                base = imagenet_checkpoint(gsd_m=3.0, **network)
                base.state_dict = torch.load(args.output / "bundled_recipe" / f"{fold.split('_10m')[0]}.state.pt", weights_only=True)
            else:
                base = imagenet_checkpoint(gsd_m=gsd, **network) if start == "imagenet" else load_checkpoint(bundled_checkpoint_path())
            budget = dict(max_steps=None, max_minutes=args.minutes) if args.minutes is not None else dict(max_steps=args.steps)
            settings = replace(settings, epochs=10_000, steps_per_epoch=50, **budget,
                               **({"seed": args.seed} if args.seed is not None else {}))
            observers = [AverageObserver(span) for span in args.weight_averages]
            started = time.perf_counter()
            outcome = fit(base, train, [], settings, gsd, step_observers=observers)
            seconds = time.perf_counter() - started
            preds = predict_chips(outcome.checkpoint, test, "cpu")
            _save(out, preds, gsd, seconds, outcome.steps)
            print(f"{name} {fold}: {outcome.steps} steps in {seconds:.0f} s", file=sys.stderr, flush=True)
            torch.save(outcome.checkpoint.state_dict, out.with_suffix(".state.pt"))
            for observer in observers:  # the same run's averaged weights, a recipe of their own
                averaged = copy.copy(outcome.checkpoint)
                averaged.state_dict = observer.average.snapshot()
                _save(args.output / f"{name}@avg{observer.span:g}" / f"{fold}.npz", predict_chips(averaged, test, "cpu"),
                      gsd, seconds, outcome.steps)
    json.dump({"recipes": args.recipes, "steps": args.steps, "minutes": args.minutes}, open(args.output / "last_run.json", "w"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
