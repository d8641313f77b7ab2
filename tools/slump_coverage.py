"""Where the outlines go wrong, per held-out reference slump: how much of each slump its best
detection covers, in how many pieces, and at what IoU. Scored on the stored cross-validation
predictions of tools/train_experiments.py (docs/TRAINING.md, "The BCE term's weight on slump pixels").

For each reference slump of at least 250 m2 and each threshold: the detections touching it, the
IoU of the best one and of their union (equal when a slump is found in one piece), the share of
the slump they cover, and the best detection's area over the slump's.

  .venv/bin/python tools/slump_coverage.py out/pw17/new_imagenet --thresholds 0.5 0.8
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import List, NamedTuple, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analyse_experiments import load_predictions  # noqa: E402

SMALLEST_M2 = 250.0  # fragments cut by the chip edge: no setting can match them (session 10)
LARGE_M2 = 10_000.0  # 1 ha


class SlumpCoverage(NamedTuple):
    fold: str
    chip: int
    area_m2: float
    pieces: int
    best_iou: float
    union_iou: float
    covered: float  # share of the slump inside the touching detections
    best_area_ratio: float  # best detection's area / the slump's (0 when none touches it)


def coverage(folder: Path, threshold: float) -> List[SlumpCoverage]:
    import shapely
    from affine import Affine

    from thaw_slump_mapper.core.chip_format import MASK_SLUMP
    from thaw_slump_mapper.engine.vectorize import vectorize_components, vectorize_mask

    rows: List[SlumpCoverage] = []
    for fold_file in sorted(folder.glob("*.npz")):
        for chip, pred in enumerate(load_predictions(fold_file)):
            transform = Affine.scale(pred.gsd_m, -pred.gsd_m)
            truth = (pred.mask == MASK_SLUMP) & pred.valid
            detected = (pred.probability >= threshold) & pred.valid
            detections = [c.geometry for c in vectorize_components(detected, pred.probability, transform)] if detected.any() else []
            for slump in vectorize_mask(truth, transform) if truth.any() else []:
                if slump.area < SMALLEST_M2:
                    continue
                touching = [d for d in detections if d.intersects(slump)]
                if not touching:
                    rows.append(SlumpCoverage(fold_file.stem, chip, slump.area, 0, 0.0, 0.0, 0.0, 0.0))
                    continue
                ious = [d.intersection(slump).area / d.union(slump).area for d in touching]
                best = touching[ious.index(max(ious))]
                union = shapely.unary_union(touching)
                rows.append(SlumpCoverage(
                    fold_file.stem, chip, slump.area, len(touching), max(ious), union.intersection(slump).area / union.union(slump).area,
                    union.intersection(slump).area / slump.area, best.area / slump.area,
                ))
    return rows


def summary(rows: Sequence[SlumpCoverage], label: str) -> str:
    hit = [r for r in rows if r.pieces]
    if not rows:
        return f"{label}: none"
    ratio = statistics.median(r.best_area_ratio for r in hit) if hit else float("nan")
    covered = statistics.median(r.covered for r in hit) if hit else float("nan")
    return (f"{label}: {len(hit)} of {len(rows)} hit, {sum(r.pieces > 1 for r in hit)} in several pieces, "
            f"{sum(r.best_iou > 0.5 for r in rows)} at IoU > 0.5; median best-detection area ratio {ratio:.2f}, "
            f"median share covered {covered:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe_folder", type=Path, help="one recipe's folder of fold .npz files")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.8])
    parser.add_argument("--each", action="store_true", help="also print one line per slump")
    args = parser.parse_args()
    for threshold in args.thresholds:
        rows = coverage(args.recipe_folder, threshold)
        print(f"{args.recipe_folder} at threshold {threshold:g}")
        print("  " + summary([r for r in rows if r.area_m2 < LARGE_M2], "under 1 ha"))
        print("  " + summary([r for r in rows if r.area_m2 >= LARGE_M2], "1 ha and more"))
        for r in rows if args.each else []:
            print(f"    {r.fold} chip {r.chip}: {r.area_m2 / 1e4:.1f} ha, {r.pieces} piece(s), best IoU {r.best_iou:.2f}, "
                  f"union IoU {r.union_iou:.2f}, covered {r.covered:.2f}, best area ratio {r.best_area_ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
