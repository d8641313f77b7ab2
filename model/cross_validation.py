"""k-fold cross-validation by chip, scored like the evaluate command.

Each fold trains on the other chips with the given recipe, predicts its held-out chips
through the detection engine (``predict_array``: same scaling, tiling and blending), and
scores pixel IoU and instance precision/recall/F1 at IoU 0.5 under the paper's rule
(``analysis.evaluation``). The pooled out-of-fold predictions then pick the threshold and
minimum area stored in the bundled checkpoint.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from ..core.progress import Progress
from .calibration import MIN_AREAS_M2, THRESHOLDS, best_calibration, predict_chips, score_grid
from .training import fit
from .training_settings import TrainSettings
from .training_start import imagenet_checkpoint, load_training_chips

METRICS = ("pixel_iou", "precision", "recall", "f1")


@dataclass
class CrossValidationReport:
    k: int
    folds: List[Dict[str, Any]]  # per fold: chips, metrics at the fixed setting, steps, seconds
    summary: Dict[str, Dict[str, float]]  # metric -> mean, std, min, max over folds
    calibration: Dict[str, Any]  # pooled best threshold / min area and its scores
    settings: Dict[str, Any]

    def to_dict(self) -> Dict[str, Any]:
        return {"k": self.k, "folds": self.folds, "summary": self.summary, "calibration": self.calibration, "settings": self.settings}

    def table(self) -> str:
        lines = ["| fold | held-out chips | pixel IoU | precision | recall | F1 |", "| --- | --- | --- | --- | --- | --- |"]
        for f in self.folds:
            m = f["metrics"]
            lines.append(f"| {f['fold']} | {len(f['chips'])} | {m['pixel_iou']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} |")
        s = self.summary
        lines.append("| mean +- sd | | " + " | ".join(f"{s[k]['mean']:.3f} +- {s[k]['std']:.3f}" for k in METRICS) + " |")
        return "\n".join(lines)


def chip_folds(n_chips: int, k: int, seed: int) -> List[List[int]]:
    order = np.random.default_rng(seed).permutation(n_chips)
    return [sorted(order[i::k].tolist()) for i in range(k)]


def cross_validate(
    chip_folder: Path,
    settings: TrainSettings,
    k: int = 3,
    threshold: float = 0.5,
    min_area_m2: float = 3000.0,
    progress: Optional[Progress] = None,
    device: str = "auto",
    network_kwargs: Optional[Dict[str, Any]] = None,
) -> CrossValidationReport:
    """Train k models (from ImageNet) and score each on its held-out chips; ``network_kwargs``
    (``decoder_channels=256``, ...) change the bundled architecture for a candidate network."""
    progress = progress or Progress()
    base = imagenet_checkpoint(gsd_m=settings.gsd_m or 3.0, **(network_kwargs or {}))
    chips = load_training_chips([chip_folder], base)
    gsd = float(settings.gsd_m or 3.0)
    folds = chip_folds(len(chips), k, settings.seed)
    fold_rows: List[Dict[str, Any]] = []
    pooled = []
    for i, held in enumerate(folds):
        part = progress.sub(i / k, (i + 1) / k)
        started = time.perf_counter()
        train = [c for j, c in enumerate(chips) if j not in held]
        test = [chips[j] for j in held]
        outcome = fit(base, train, [], settings, gsd, part.sub(0.0, 0.9))
        preds = predict_chips(outcome.checkpoint, test, device, part.sub(0.9, 1.0))
        pooled.extend(preds)
        metrics = score_grid(preds, (threshold,), (min_area_m2,))[(threshold, min_area_m2)]
        fold_rows.append({"fold": i + 1, "chips": [c.name for c in test], "metrics": metrics, "steps": outcome.steps,
                          "seconds": round(time.perf_counter() - started, 1)})
        progress.report((i + 1) / k, f"fold {i + 1}/{k}: " + ", ".join(f"{m} {metrics[m]:.3f}" for m in METRICS))
    summary = {}
    for m in METRICS:
        values = [f["metrics"][m] for f in fold_rows]
        summary[m] = {"mean": float(np.mean(values)), "std": float(statistics.pstdev(values)), "min": float(min(values)), "max": float(max(values))}
    grid = score_grid(pooled, THRESHOLDS, MIN_AREAS_M2)
    t, a, best = best_calibration(grid)
    calibration = {"threshold": t, "min_area_m2": a, "pooled_scores": best,
                   "pooled_at_fixed": grid.get((threshold, min_area_m2)),
                   "grid": {f"{kt}|{ka:g}": v for (kt, ka), v in grid.items()}}
    return CrossValidationReport(k, fold_rows, summary, calibration, settings.to_dict())


def write_report(report: CrossValidationReport, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=1))
    path.with_suffix(".md").write_text(report.table() + "\n")
    return path


CV_STEPS_PER_FOLD = 100  # short runs: 3 folds must fit beside the bundled run on 2 cores


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m thaw_slump_mapper.model.cross_validation CHIPS OUT.json`` (make cross-validate)."""
    import argparse
    import sys

    from .bundled_recipe import bundled_settings

    parser = argparse.ArgumentParser(description="k-fold cross-validation of the bundled recipe")
    parser.add_argument("chips", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--steps", type=int, default=CV_STEPS_PER_FOLD)
    parser.add_argument("--encoder-warmup-share", type=float, default=None,
                        help="override the recipe's share of steps on a fixed encoder (a candidate recipe)")
    parser.add_argument("--decoder-channels", type=int, default=None,
                        help="override the bundled network's decoder width (256: the network of v2.0.0 and before)")
    args = parser.parse_args(argv)
    overrides = {"max_steps": args.steps}
    if args.encoder_warmup_share is not None:
        overrides["encoder_warmup_share"] = args.encoder_warmup_share
    network = {"decoder_channels": args.decoder_channels} if args.decoder_channels else None
    report = cross_validate(args.chips, bundled_settings(**overrides), k=args.k, network_kwargs=network,
                            progress=Progress(lambda f, m: print(f"{f * 100:5.1f}% {m}", file=sys.stderr) if m.startswith("fold") else None))
    write_report(report, args.output)
    print(report.table())
    calibration = report.calibration
    print(
        f"pooled best: threshold {calibration['threshold']}, min area {calibration['min_area_m2']} m2: "
        f"{calibration['pooled_scores']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
