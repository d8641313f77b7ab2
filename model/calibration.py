"""Calibration of detection on validation chips: predict them through the detection engine,
score every (threshold, minimum area) pair and pick the best (no QGIS, no Qt)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.checkpoint import Checkpoint
from ..core.chip_format import MASK_IGNORE, MASK_SLUMP, LoadedChip
from ..core.progress import Progress
from ..engine.outline_cleanup import NO_CLEANUP, CleanupSettings, clean_outlines

# Candidates searched when calibrating detection on validation chips (the paper dropped
# polygons under 0.3 ha; the search may keep that or pick another floor).
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
PAPER_MIN_AREA_M2 = 3000.0  # Huang et al. 2020 dropped polygons under 0.3 ha
MIN_AREAS_M2 = (0.0, 1000.0, 2000.0, PAPER_MIN_AREA_M2)
CALIBRATION_F1_TOLERANCE = 0.02  # F1 differences this small are noise on ~100 validation slumps

Grid = Dict[Tuple[float, float], Dict[str, float]]


def resampled_for_inference(chip: LoadedChip, gsd_m: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw values, valid and mask of a chip at the model's GSD (predict_array stretches itself)."""
    import torch
    import torch.nn.functional as F

    h, w = chip.mask.shape
    factor = chip.gsd / gsd_m
    size = (max(8, int(round(h * factor))), max(8, int(round(w * factor))))
    if size == (h, w):
        return chip.image, chip.valid, chip.mask
    image = torch.from_numpy(chip.image)[None]
    mode = "area" if size[0] < h else "bilinear"
    image = F.interpolate(image, size=size, mode=mode, **({} if mode == "area" else {"align_corners": False}))[0].numpy()
    valid = F.interpolate(torch.from_numpy(chip.valid.astype(np.float32))[None, None], size=size, mode="nearest")[0, 0].numpy() > 0.5
    mask = F.interpolate(torch.from_numpy(chip.mask.astype(np.float32))[None, None], size=size, mode="nearest")[0, 0].numpy().astype(np.uint8)
    return image, valid, mask


@dataclass
class ChipPrediction:
    probability: np.ndarray
    valid: np.ndarray
    mask: np.ndarray
    gsd_m: float


def predict_chips(ckpt: Checkpoint, chips: List[LoadedChip], device: str = "auto", progress: Optional[Progress] = None,
                  tta: str = "none") -> List[ChipPrediction]:
    """Probabilities through the detection engine's own tiling and blending (and its
    test-time augmentation, when asked)."""
    from ..engine.backends import make_predictor
    from ..engine.inference import predict_array
    from ..engine.tiling import fit_tile_size
    from ..engine.tta import with_tta

    out = []
    predictors: Dict[int, Any] = {}  # one network per tile size, not one per chip
    for i, chip in enumerate(chips):
        if progress:
            progress.check_cancelled()
            progress.report(i / max(1, len(chips)), f"predicting validation chip {i + 1}/{len(chips)}")
        image, valid, mask = resampled_for_inference(chip, ckpt.gsd_m)
        tile = fit_tile_size(valid.shape[0], valid.shape[1], int(ckpt.tile_size))
        if tile not in predictors:
            # the detection backend itself (onnxruntime on the CPU), so calibration scores what detect draws
            predictors[tile] = with_tta(make_predictor(ckpt, device=device, backend="auto", tile_size=tile), tta)
        predictor = predictors[tile]
        prob = predict_array(ckpt, image, valid, predictor=predictor)
        out.append(ChipPrediction(prob, valid, mask, ckpt.gsd_m))
    return out


def score_grid(predictions: List[ChipPrediction], thresholds: Sequence[float], min_areas: Sequence[float],
               cleanup: CleanupSettings = NO_CLEANUP) -> Grid:
    """Scores for every (threshold, minimum area) pair, using the evaluate command's code and
    the detection engine's vectoriser and outline clean-up."""
    counts = {(t, a): [0, 0, 0, 0, 0] for t in thresholds for a in min_areas}  # tp fp fn inter union
    for pred in predictions:
        _count_chip(pred, thresholds, min_areas, cleanup, counts)
    return {key: _scores(*value) for key, value in counts.items()}


def _count_chip(pred: ChipPrediction, thresholds: Sequence[float], min_areas: Sequence[float], cleanup: CleanupSettings,
                counts: Dict[Tuple[float, float], List[int]]) -> None:
    """Add one chip's instance matches and pixel overlaps to every (threshold, area) counter."""
    from affine import Affine

    from ..analysis.evaluation import paper_rule_scores
    from ..engine.vectorize import vectorize_mask

    transform = Affine.scale(pred.gsd_m, -pred.gsd_m)
    keep = pred.valid & (pred.mask != MASK_IGNORE)
    truth = (pred.mask == MASK_SLUMP) & keep
    references = vectorize_mask(truth, transform) if truth.any() else []
    for t in thresholds:
        detected = (pred.probability >= t) & pred.valid
        polygons = vectorize_mask(detected, transform) if detected.any() else []
        polygons = clean_outlines(polygons, pred.gsd_m, cleanup)
        inter = int((detected & truth).sum())
        union = int(((detected & keep) | truth).sum())
        for a in min_areas:
            s = paper_rule_scores([p for p in polygons if p.area >= a], references, 0.5)
            c = counts[(t, a)]
            c[0] += s.tp
            c[1] += s.fp
            c[2] += s.fn
            c[3] += inter
            c[4] += union


def _scores(tp: int, fp: int, fn: int, inter: int, union: int) -> Dict[str, float]:
    from ..analysis.evaluation import scores_from_counts

    s = scores_from_counts(tp, fp, fn)
    return {"pixel_iou": inter / union if union else 0.0, "precision": s.precision, "recall": s.recall,
            "f1": s.f1, "tp": tp, "fp": fp, "fn": fn}


def best_setting(grid: Dict[tuple, Dict[str, float]]) -> tuple:
    """The key calibration picks from any grid whose keys start (threshold, minimum area):
    highest instance F1, but recall may not collapse: among the settings within
    ``CALIBRATION_F1_TOLERANCE`` of the best F1 the one with the highest recall wins, and a
    minimum area above the paper's 0.3 ha floor is never chosen (it drops real slumps).
    Remaining ties go to the setting nearest threshold 0.5 and 0.3 ha, then to the first in the
    grid's order. Longer keys let tools/detection_rules.py apply the same rule to other rules."""
    allowed = {k: v for k, v in grid.items() if k[1] <= PAPER_MIN_AREA_M2} or grid
    best_f1 = max(v["f1"] for v in allowed.values())
    near = {k: v for k, v in allowed.items() if v["f1"] >= best_f1 - CALIBRATION_F1_TOLERANCE}
    return max(near, key=lambda k: (round(near[k]["recall"], 4), round(near[k]["f1"], 4), near[k]["pixel_iou"],
                                    -abs(k[0] - 0.5), -abs(k[1] - PAPER_MIN_AREA_M2)))


def best_calibration(grid: Grid) -> Tuple[float, float, Dict[str, float]]:
    """``best_setting`` of a (threshold, minimum area) grid, with its scores."""
    key = best_setting(grid)
    return key[0], key[1], grid[key]


def calibrate_on_chips(ckpt: Checkpoint, chips: List[LoadedChip], device: str, progress: Optional[Progress] = None) -> Dict[str, Any]:
    """Set the checkpoint's threshold and minimum area to the best on ``chips``; returns the
    scores there as ``val_*`` metrics."""
    preds = predict_chips(ckpt, chips, device, progress)
    threshold, min_area, scores = best_calibration(score_grid(preds, THRESHOLDS, MIN_AREAS_M2))
    ckpt.threshold, ckpt.min_area_m2 = float(threshold), float(min_area)
    return {f"val_{k}": (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}
