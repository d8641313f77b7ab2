"""Score the stored cross-validation predictions of tools/train_experiments.py.

For each recipe and source (arctic folds, Sentinel-2 folds): the pooled best threshold and
minimum area (an optimistic but equal footing for every recipe), the per-fold F1 at that
setting (mean +- sd), pixel IoU at 0.5; then outline clean-up variants on the same
predictions. Prints markdown tables for docs/TRAINING.md and writes a JSON beside them.

  .venv/bin/python tools/analyse_experiments.py out/experiments
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Dict

import numpy as np


def load_predictions(path: Path) -> list:
    from thaw_slump_mapper.model.calibration import ChipPrediction

    data = np.load(path)
    gsd = float(data["gsd"])
    return [ChipPrediction(data[f"{i}_probability"], data[f"{i}_valid"], data[f"{i}_mask"], gsd) for i in range(int(data["n"]))]


def summarise(folds: Dict[str, list], cleanup=None) -> Dict[str, float]:
    from thaw_slump_mapper.engine.outline_cleanup import NO_CLEANUP
    from thaw_slump_mapper.model.calibration import MIN_AREAS_M2, THRESHOLDS, best_calibration, score_grid

    cleanup = cleanup or NO_CLEANUP
    pooled = [p for preds in folds.values() for p in preds]
    grid = score_grid(pooled, THRESHOLDS, MIN_AREAS_M2, cleanup)
    t, a, best = best_calibration(grid)
    # one grid a fold for its F1 at the pooled setting and its own pixel IoU at 0.5 (the pooled
    # pixel IoU weights the folds by their slump pixels)
    fold_grids = [score_grid(preds, sorted({t, 0.5}), sorted({a, 0.0}), cleanup) for preds in folds.values()]
    per_fold = [g[(t, a)]["f1"] for g in fold_grids]
    fold_iou = [g[(0.5, 0.0)]["pixel_iou"] for g in fold_grids]
    at_half = grid[(0.5, 0.0)]
    return {"threshold": t, "min_area_m2": a, "f1": best["f1"], "precision": best["precision"], "recall": best["recall"],
            "tp": best["tp"], "fp": best["fp"], "fn": best["fn"], "fold_f1_mean": float(np.mean(per_fold)),
            "fold_f1_sd": float(statistics.pstdev(per_fold)) if len(per_fold) > 1 else 0.0,
            "pixel_iou_at_0.5": at_half["pixel_iou"], "fold_pixel_iou_at_0.5": fold_iou,
            "f1_at_0.5_no_floor": at_half["f1"], "n_folds": len(per_fold)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--cleanup-recipes", nargs="*", default=None, help="recipes to try clean-up variants on (default: all)")
    args = parser.parse_args()
    from thaw_slump_mapper.engine.outline_cleanup import CleanupSettings

    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    lines = ["| recipe | source | folds | steps | s/fold | best thr / min m2 | P | R | F1 pooled | F1 per fold (mean +- sd) | pixel IoU @0.5 "
             "| pixel IoU @0.5 per fold (mean) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    recipes = sorted(p for p in args.folder.iterdir() if p.is_dir() and p.name != "chips")
    all_folds: Dict[str, Dict[str, Dict[str, list]]] = {}
    for recipe in recipes:
        for source in ("arctic", "s2"):
            files = sorted(recipe.glob(f"{source}*.npz"))
            if not files:
                continue
            folds = {f.stem: load_predictions(f) for f in files}
            all_folds.setdefault(recipe.name, {})[source] = folds
            meta = [np.load(f) for f in files]
            s = summarise(folds)
            results.setdefault(recipe.name, {})[source] = s
            mean_seconds = np.mean([float(m["seconds"]) for m in meta])
            lines.append(f"| {recipe.name} | {source} | {len(files)} | {int(meta[0]['steps'])} | {mean_seconds:.0f} | "
                         f"{s['threshold']:g} / {s['min_area_m2']:g} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} "
                         f"({s['tp']}/{s['fp']}/{s['fn']}) | {s['fold_f1_mean']:.3f} +- {s['fold_f1_sd']:.3f} | {s['pixel_iou_at_0.5']:.3f} | "
                         + "/".join(f"{x:.3f}".lstrip("0") for x in s["fold_pixel_iou_at_0.5"])
                         + f" ({np.mean(s['fold_pixel_iou_at_0.5']):.3f}) |")
    print("\n".join(lines))
    variants = {"none": CleanupSettings(), "fill holes < 16 px": CleanupSettings(fill_holes_px=16),
                "closing 1 px": CleanupSettings(close_px=1.0), "closing 2 px": CleanupSettings(close_px=2.0),
                "opening 1 px": CleanupSettings(open_px=1.0),
                "closing 1 px + fill holes": CleanupSettings(close_px=1.0, fill_holes_px=16),
                "closing 2 px + fill holes": CleanupSettings(close_px=2.0, fill_holes_px=16)}
    clines = [
        "| recipe | source | clean-up | best thr / min m2 | P | R | F1 pooled (TP/FP/FN) | F1 per fold |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    cleanup_results = {}
    for recipe, sources in all_folds.items():
        if args.cleanup_recipes is not None and recipe not in args.cleanup_recipes:
            continue
        for source, folds in sources.items():
            for vname, v in variants.items():
                s = summarise(folds, v)
                cleanup_results[f"{recipe}|{source}|{vname}"] = s
                clines.append(f"| {recipe} | {source} | {vname} | {s['threshold']:g} / {s['min_area_m2']:g} | {s['precision']:.3f} | "
                              f"{s['recall']:.3f} | {s['f1']:.3f} ({s['tp']}/{s['fp']}/{s['fn']}) | "
                              f"{s['fold_f1_mean']:.3f} +- {s['fold_f1_sd']:.3f} |")
                print(clines[-1], file=sys.stderr, flush=True)
    print()
    print("\n".join(clines))
    (args.folder / "analysis.json").write_text(json.dumps({"recipes": results, "cleanup": cleanup_results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
