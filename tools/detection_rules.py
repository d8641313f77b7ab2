"""Which rule turns a probability map into slump polygons best? Scored on the stored
cross-validation predictions of tools/train_experiments.py (docs/TRAINING.md, "Detection
rules beyond one threshold").

Rules, each with a minimum area (0, 1000, 2000, 3000 m2):
- single: pixels >= t, connected (what detection does);
- hysteresis: outline at t, keep components whose peak reaches a higher seed threshold;
- mean floor: outline at t, keep components whose mean probability reaches a floor;
- watershed: outline at t, split components between markers (pixels >= a higher threshold,
  at least ``min px`` large) by flooding the inverted probability (touching slumps);
- peak contour: detect at t, outline each component at a share of its own peak probability
  (at least t): blobs whose core is sure shrink to a tighter contour, faint ones keep theirs;
- erode: detect at t, shrink every component by k pixels (those it removes are dropped).

Two scores a family: the pooled best setting (optimistic: chosen on the scored chips), and
leave-one-fold-out calibration (each fold scored with the setting that
``model.calibration.best_setting``, calibration's own rule, picks on the other folds), which is what a
user's run gets: a setting chosen on validation chips, used on other imagery.

  .venv/bin/python tools/detection_rules.py out/outline500/new_imagenet
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analyse_experiments import load_predictions  # noqa: E402

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
SEEDS = THRESHOLDS[1:] + (0.9,)
MEAN_FLOORS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
MIN_AREAS_M2 = (0.0, 1000.0, 2000.0, 3000.0)
MARKER_MIN_PX = (1, 25)
PEAK_SHARES = (0.7, 0.8, 0.9, 0.95)
ERODE_PX = (1, 2, 3)

Key = Tuple  # (threshold, min area, family, *parameters)
Counts = Dict[Key, Tuple[int, int, int]]


def watershed_split(probability: np.ndarray, detected: np.ndarray, marker_threshold: float, marker_min_px: int) -> np.ndarray:
    """Labels of ``detected`` split between markers; components without a marker stay whole.

    Inside the mask the flooding cost is 254 - 254 p and outside it 255, so no label crosses
    the background into another component (image foresting transform: path cost is its maximum)."""
    from scipy import ndimage

    from thaw_slump_mapper.engine.vectorize import FOUR_CONNECTED

    markers, n = ndimage.label((probability >= marker_threshold) & detected, structure=FOUR_CONNECTED)
    if n:
        sizes = np.bincount(markers.ravel(), minlength=n + 1)
        small = sizes < marker_min_px
        small[0] = False
        markers[small[markers]] = 0
    components, _ = ndimage.label(detected, structure=FOUR_CONNECTED)
    marked = np.zeros(int(components.max()) + 1, dtype=bool)
    marked[np.unique(components[markers > 0])] = True
    unmarked = detected & ~marked[components]
    markers = markers.astype(np.int32)
    markers[unmarked] = components[unmarked] + int(markers.max()) + 1
    cost = np.where(detected, np.clip(254 - probability * 254, 0, 254), 255).astype(np.uint8)
    flooded = ndimage.watershed_ift(cost, markers)
    return np.where(detected, flooded, 0).astype(np.int32)


def peak_contour(probability: np.ndarray, detected: np.ndarray, share: float) -> np.ndarray:
    """``detected`` kept where the probability reaches ``share`` of its component's peak."""
    from scipy import ndimage

    from thaw_slump_mapper.engine.vectorize import FOUR_CONNECTED

    components, n = ndimage.label(detected, structure=FOUR_CONNECTED)
    if not n:
        return detected
    peaks = np.concatenate([[0.0], ndimage.maximum(probability, components, np.arange(1, n + 1))])
    return detected & (probability >= share * peaks[components])


def eroded(detected: np.ndarray, pixels: int) -> np.ndarray:
    from scipy import ndimage

    from thaw_slump_mapper.engine.vectorize import FOUR_CONNECTED

    return ndimage.binary_erosion(detected, structure=FOUR_CONNECTED, iterations=pixels)


def _label_polygons(labels: np.ndarray, transform) -> list:
    import shapely
    from rasterio.features import shapes
    from shapely.geometry import shape

    parts: Dict[int, list] = {}
    for geojson, value in shapes(labels, mask=labels > 0, connectivity=4, transform=transform):
        parts.setdefault(int(value), []).append(shape(geojson))
    return [p[0] if len(p) == 1 else shapely.unary_union(p) for p in parts.values()]


def chip_counts(pred, thresholds: Sequence[float] = THRESHOLDS) -> Counts:
    """TP/FP/FN under the paper's rule for every rule setting on one chip."""
    from affine import Affine

    from thaw_slump_mapper.analysis.evaluation import paper_rule_scores
    from thaw_slump_mapper.core.chip_format import MASK_IGNORE, MASK_SLUMP
    from thaw_slump_mapper.engine.vectorize import vectorize_components, vectorize_mask

    transform = Affine.scale(pred.gsd_m, -pred.gsd_m)
    truth = (pred.mask == MASK_SLUMP) & pred.valid & (pred.mask != MASK_IGNORE)
    references = vectorize_mask(truth, transform) if truth.any() else []
    out: Counts = {}

    def add(threshold: float, family: str, params: tuple, polygons: Sequence) -> None:
        for area in MIN_AREAS_M2:
            s = paper_rule_scores([p for p in polygons if p.area >= area], references, 0.5)
            out[(threshold, area, family) + params] = (s.tp, s.fp, s.fn)

    for t in thresholds:
        detected = (pred.probability >= t) & pred.valid
        comps = vectorize_components(detected, pred.probability, transform) if detected.any() else []
        add(t, "single", (), [c.geometry for c in comps])
        for seed in (s for s in SEEDS if s > t):
            add(t, "hysteresis", (seed,), [c.geometry for c in comps if c.score_max >= seed])
        for floor in (f for f in MEAN_FLOORS if f > t):
            add(t, "mean floor", (floor,), [c.geometry for c in comps if c.score_mean >= floor])
        for marker in (s for s in SEEDS if s > t):
            for min_px in MARKER_MIN_PX:
                polygons = _label_polygons(watershed_split(pred.probability, detected, marker, min_px), transform) if detected.any() else []
                add(t, "watershed", (marker, min_px), polygons)
        for share in PEAK_SHARES:
            tight = peak_contour(pred.probability, detected, share)
            add(t, "peak contour", (share,), [c.geometry for c in vectorize_components(tight, pred.probability, transform)]
                if tight.any() else [])
        for px in ERODE_PX:
            small = eroded(detected, px)
            add(t, "erode", (px,), [c.geometry for c in vectorize_components(small, pred.probability, transform)]
                if small.any() else [])
    return out


def grid(chips: List[Counts], keys: Sequence[Key]) -> Dict[Key, Dict[str, float]]:
    from thaw_slump_mapper.analysis.evaluation import scores_from_counts

    out = {}
    for k in keys:
        tp, fp, fn = (sum(c[k][i] for c in chips) for i in range(3))
        s = scores_from_counts(tp, fp, fn)
        out[k] = {"f1": s.f1, "precision": s.precision, "recall": s.recall, "tp": tp, "fp": fp, "fn": fn, "pixel_iou": 0.0}
    return out


FAMILIES: Dict[str, Callable[[Key], bool]] = {
    "single threshold (today)": lambda k: k[2] == "single",
    "+ hysteresis": lambda k: k[2] in ("single", "hysteresis"),
    "+ mean floor": lambda k: k[2] in ("single", "mean floor"),
    "+ watershed split": lambda k: k[2] in ("single", "watershed"),
    "+ peak contour": lambda k: k[2] in ("single", "peak contour"),
    "+ erode": lambda k: k[2] in ("single", "erode"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe_folder", type=Path, help="one recipe's folder of fold .npz files")
    parser.add_argument("--source", default="arctic", help="fold name prefix (arctic, s2)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS),
                        help="probability thresholds of the grid (default calibration's own)")
    args = parser.parse_args()
    from thaw_slump_mapper.analysis.evaluation import scores_from_counts
    from thaw_slump_mapper.model.calibration import best_setting

    folds = {f.stem: [chip_counts(p, args.thresholds) for p in load_predictions(f)] for f in sorted(args.recipe_folder.glob(f"{args.source}*.npz"))}
    if len(folds) < 2:
        raise SystemExit(f"need two or more {args.source}* folds in {args.recipe_folder}")
    keys = list(next(iter(folds.values()))[0])
    print(f"{args.recipe_folder} ({args.source}, {len(folds)} folds)\n")
    print("| rule family | pooled best setting | pooled best F1 (TP/FP/FN) | leave-one-fold-out F1 (TP/FP/FN) | per fold | settings chosen |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, member in FAMILIES.items():
        family = [k for k in keys if member(k)]
        pooled = grid([c for chips in folds.values() for c in chips], family)
        best = max(pooled, key=lambda k: (pooled[k]["f1"], pooled[k]["recall"]))
        totals, per_fold, chosen = [0, 0, 0], [], []
        for held in folds:
            k = best_setting(grid([c for f, chips in folds.items() if f != held for c in chips], family))
            s = grid(folds[held], [k])[k]
            totals = [totals[0] + s["tp"], totals[1] + s["fp"], totals[2] + s["fn"]]
            per_fold.append(f"{s['f1']:.2f}")
            chosen.append(" ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in k))
        lofo = scores_from_counts(*totals)
        b = pooled[best]
        print(f"| {name} | {' '.join(f'{x:g}' if isinstance(x, float) else str(x) for x in best)} | {b['f1']:.3f} "
              f"({b['tp']}/{b['fp']}/{b['fn']}) | {lofo.f1:.3f} ({totals[0]}/{totals[1]}/{totals[2]}) | {' / '.join(per_fold)} | "
              f"{'; '.join(chosen)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
