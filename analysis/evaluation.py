"""Accuracy of a slump polygon layer against a reference layer.

Three ways to score, because each answers a different question:

* the paper's rule (Huang et al. 2020): a detection is a true positive when its largest IoU
  with any reference polygon exceeds the threshold; a reference is a false negative when
  its largest IoU with any detection is below it. TP counts detections and FN counts
  references, as in the paper, so precision = TP/(TP+FP) and recall = TP/(TP+FN);
* one-to-one matching: each reference can be claimed by one detection only (greedy by
  IoU), so a slump split into two detections gives one TP and one FP;
* pixel IoU: area agreement, blind to how the area is cut into polygons.

AP follows the paper's sweep: the paper-rule precision and recall at IoU thresholds
1.0, 0.96, ..., 0.0, and AP = sum (R_i - R_{i-1}) * P_i with R_{-1} = 0. Score-ranked AP
(the usual detection AP) ranks detections by their model score instead.

Candidate pairs come from an STRtree and intersection areas are computed in one
vectorised shapely call, so layers of thousands of polygons score in well under a second.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from ..core.errors import UserError
from ..core.progress import Progress
from ..engine.output_safety import StagedFile, check_file_output, check_vector_output
from ..engine.vector_io import PolygonFeature, PolygonLayer, read_polygons, reproject_geometry, write_polygons
from .review import is_negative_label

# The paper's sweep: 1.0 down to 0 in steps of 0.04 (26 thresholds).
PAPER_SWEEP_STEP = 0.04
EVALUATED_LAYER = "evaluated_detections"
MISSED_LAYER = "missed_references"


@dataclass
class InstanceScores:
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class IouPairs:
    """Every (detection, reference) pair whose polygons intersect, with its IoU."""

    det_index: np.ndarray  # int64, index into the detections
    ref_index: np.ndarray  # int64, index into the references
    iou: np.ndarray  # float64
    n_detections: int
    n_references: int

    def best_for_detections(self) -> Tuple[np.ndarray, np.ndarray]:
        """Largest IoU of each detection with any reference (0 when none touches), and that reference (-1)."""
        return _best_per_index(self.det_index, self.ref_index, self.iou, self.n_detections)

    def best_for_references(self) -> Tuple[np.ndarray, np.ndarray]:
        return _best_per_index(self.ref_index, self.det_index, self.iou, self.n_references)


def _best_per_index(keys: np.ndarray, others: np.ndarray, iou: np.ndarray, n: int) -> Tuple[np.ndarray, np.ndarray]:
    best = np.zeros(n, dtype=np.float64)
    partner = np.full(n, -1, dtype=np.int64)
    if len(keys):
        # Sort so the highest IoU of each key comes last; fancy assignment keeps the last write.
        order = np.lexsort((iou, keys))
        best[keys[order]] = iou[order]
        partner[keys[order]] = others[order]
    return best, partner


def iou_pairs(detections: Sequence[BaseGeometry], references: Sequence[BaseGeometry]) -> IouPairs:
    """IoU of every intersecting (detection, reference) pair, found through an STRtree."""
    dets = np.asarray(list(detections), dtype=object)
    refs = np.asarray(list(references), dtype=object)
    empty = np.zeros(0, dtype=np.int64)
    if len(dets) == 0 or len(refs) == 0:
        return IouPairs(empty, empty, np.zeros(0), len(dets), len(refs))
    tree = STRtree(refs)
    det_idx, ref_idx = tree.query(dets, predicate="intersects")
    if len(det_idx) == 0:
        return IouPairs(empty, empty, np.zeros(0), len(dets), len(refs))
    inter = shapely.area(shapely.intersection(dets[det_idx], refs[ref_idx]))
    union = shapely.area(dets[det_idx]) + shapely.area(refs[ref_idx]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    # Identical outlines come out a hair above or below 1 in floating point; rounding to 1e-9
    # keeps "IoU > 1.0" impossible and exact matches exactly 1, so the sweep's ends are stable.
    iou = np.clip(np.round(iou, 9), 0.0, 1.0)
    return IouPairs(det_idx.astype(np.int64), ref_idx.astype(np.int64), iou.astype(np.float64), len(dets), len(refs))


def scores_from_counts(tp: int, fp: int, fn: int) -> InstanceScores:
    """Precision, recall and F1; a ratio with a zero denominator is reported as 0."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return InstanceScores(int(tp), int(fp), int(fn), float(precision), float(recall), float(f1))


def _paper_rule_from_pairs(pairs: IouPairs, iou_threshold: float) -> InstanceScores:
    det_best, _ = pairs.best_for_detections()
    ref_best, _ = pairs.best_for_references()
    tp = int(np.count_nonzero(det_best > iou_threshold))
    fp = pairs.n_detections - tp
    fn = int(np.count_nonzero(ref_best < iou_threshold))
    return scores_from_counts(tp, fp, fn)


def paper_rule_scores(
    detections: Sequence[BaseGeometry], references: Sequence[BaseGeometry], iou_threshold: float = 0.5
) -> InstanceScores:
    """The paper's rule: TP = detection whose best IoU > threshold; FN = reference whose best IoU < threshold."""
    return _paper_rule_from_pairs(iou_pairs(detections, references), iou_threshold)


def _one_to_one_matches(pairs: IouPairs, iou_threshold: float) -> Dict[int, Tuple[int, float]]:
    """Greedy matching by decreasing IoU: detection index -> (reference index, IoU)."""
    keep = pairs.iou > iou_threshold
    det_idx, ref_idx, iou = pairs.det_index[keep], pairs.ref_index[keep], pairs.iou[keep]
    order = np.argsort(-iou, kind="stable")
    used_dets: set = set()
    used_refs: set = set()
    matches: Dict[int, Tuple[int, float]] = {}
    for k in order:
        d, r = int(det_idx[k]), int(ref_idx[k])
        if d in used_dets or r in used_refs:
            continue
        used_dets.add(d)
        used_refs.add(r)
        matches[d] = (r, float(iou[k]))
    return matches


def one_to_one_scores(
    detections: Sequence[BaseGeometry], references: Sequence[BaseGeometry], iou_threshold: float = 0.5
) -> InstanceScores:
    """Each reference matched at most once (greedy by IoU, pairs with IoU > threshold)."""
    pairs = iou_pairs(detections, references)
    tp = len(_one_to_one_matches(pairs, iou_threshold))
    return scores_from_counts(tp, pairs.n_detections - tp, pairs.n_references - tp)


def pixel_iou(pred_mask: np.ndarray, ref_mask: np.ndarray, valid: Optional[np.ndarray] = None) -> float:
    """IoU of two boolean masks inside ``valid``; 1.0 when both are empty (they agree)."""
    pred = np.asarray(pred_mask).astype(bool)
    ref = np.asarray(ref_mask).astype(bool)
    if pred.shape != ref.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {ref.shape}")
    if valid is not None:
        valid = np.asarray(valid).astype(bool)
        pred = pred & valid
        ref = ref & valid
    union = int(np.count_nonzero(pred | ref))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(pred & ref)) / union


def vector_pixel_iou(detections: Sequence[BaseGeometry], references: Sequence[BaseGeometry]) -> float:
    """Pixel IoU without pixels: area(union of detections AND union of references) / area of their union."""
    det_union = shapely.union_all(np.asarray(list(detections), dtype=object)) if len(detections) else shapely.Polygon()
    ref_union = shapely.union_all(np.asarray(list(references), dtype=object)) if len(references) else shapely.Polygon()
    union_area = shapely.union(det_union, ref_union).area
    if union_area == 0:
        return 1.0
    return float(shapely.intersection(det_union, ref_union).area / union_area)


def paper_sweep_thresholds(step: float = PAPER_SWEEP_STEP) -> List[float]:
    """1.0, 1.0 - step, ..., 0.0 (rounded, so 0.04 steps land exactly on 0)."""
    n = int(round(1.0 / step))
    return [round(1.0 - i * step, 10) for i in range(n + 1)]


@dataclass
class SweepResult:
    ap: float
    thresholds: List[float]
    precision: List[float]
    recall: List[float]


def _sweep_from_pairs(pairs: IouPairs, step: float) -> SweepResult:
    thresholds = paper_sweep_thresholds(step)
    precisions: List[float] = []
    recalls: List[float] = []
    ap = 0.0
    previous_recall = 0.0
    for t in thresholds:  # falling threshold: recall never falls
        s = _paper_rule_from_pairs(pairs, t)
        precisions.append(s.precision)
        recalls.append(s.recall)
        ap += (s.recall - previous_recall) * s.precision
        previous_recall = s.recall
    return SweepResult(float(ap), thresholds, precisions, recalls)


def iou_sweep(
    detections: Sequence[BaseGeometry], references: Sequence[BaseGeometry], step: float = PAPER_SWEEP_STEP
) -> SweepResult:
    """The paper's IoU sweep with the precision/recall curve behind the AP."""
    return _sweep_from_pairs(iou_pairs(detections, references), step)


def ap_iou_sweep(
    detections: Sequence[BaseGeometry], references: Sequence[BaseGeometry], step: float = PAPER_SWEEP_STEP
) -> float:
    """The paper's AP: sum over the IoU sweep 1.0..0 of (R_i - R_{i-1}) * P_i under the paper's rule."""
    return iou_sweep(detections, references, step).ap


def _ap_score_from_pairs(pairs: IouPairs, scores: Sequence[float], iou_threshold: float) -> float:
    n_refs = pairs.n_references
    if n_refs == 0 or pairs.n_detections == 0:
        return 0.0
    candidates: Dict[int, List[Tuple[float, int]]] = {}
    for d, r, v in zip(pairs.det_index, pairs.ref_index, pairs.iou):
        if v > iou_threshold:
            candidates.setdefault(int(d), []).append((float(v), int(r)))
    # Highest score first; ties keep layer order so the result does not depend on sort luck.
    order = sorted(range(pairs.n_detections), key=lambda i: (-float(scores[i]), i))
    used: set = set()
    tp_cum = 0
    ap = 0.0
    previous_recall = 0.0
    for rank, d in enumerate(order, start=1):
        for _, r in sorted(candidates.get(d, []), reverse=True):
            if r not in used:
                used.add(r)
                tp_cum += 1
                break
        recall = tp_cum / n_refs
        ap += (recall - previous_recall) * (tp_cum / rank)
        previous_recall = recall
    return float(ap)


def ap_score_ranked(
    detections: Sequence[BaseGeometry],
    scores: Sequence[float],
    references: Sequence[BaseGeometry],
    iou_threshold: float = 0.5,
) -> float:
    """Detection AP: detections ranked by score, each claims its best free reference with IoU > threshold."""
    if len(scores) != len(detections):
        raise ValueError("one score per detection is needed")
    return _ap_score_from_pairs(iou_pairs(detections, references), scores, iou_threshold)


# ---------------------------------------------------------------- layers on disk


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygon parts of a repaired geometry (make_valid may add stray lines or points)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _valid(geom: BaseGeometry) -> BaseGeometry:
    return geom if geom.is_valid else _polygonal(shapely.make_valid(geom))


def _repair(features: List[PolygonFeature]) -> Tuple[List[Tuple[int, PolygonFeature]], int]:
    """(1-based position in the layer, valid feature) pairs and how many needed repair.

    Positions are kept so output ids point at the right feature even when an unrepairable
    (empty) geometry is dropped.
    """
    repaired = 0
    out: List[Tuple[int, PolygonFeature]] = []
    for position, f in enumerate(features, start=1):
        if not f.geometry.is_valid:
            repaired += 1
        geom = _valid(f.geometry)
        if not geom.is_empty:
            out.append((position, PolygonFeature(geom, f.properties)))
    return out, repaired


def _number_or_none(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass
class EvaluationInputs:
    """Both layers read, repaired and in the detections' CRS; features keep their positions in
    the files (for the match layers), and ARTS negatives are left out of the reference."""

    det_src: PolygonLayer
    ref_src: PolygonLayer
    det_numbered: List[Tuple[int, PolygonFeature]]
    ref_numbered: List[Tuple[int, PolygonFeature]]
    repaired: Dict[str, int]
    n_negative: int

    @property
    def det_features(self) -> List[PolygonFeature]:
        return [f for _, f in self.det_numbered]

    @property
    def dets(self) -> List[BaseGeometry]:
        return [f.geometry for _, f in self.det_numbered]

    @property
    def refs(self) -> List[BaseGeometry]:
        return [f.geometry for _, f in self.ref_numbered]


def evaluate_layers(
    detections_path: Path | str,
    reference_path: Path | str,
    output_json: Path | str | None,
    output_layer_path: Path | str | None = None,
    iou_threshold: float = 0.5,
    det_layer: Optional[str] = None,
    ref_layer: Optional[str] = None,
    progress: Optional[Progress] = None,
    overwrite: bool = False,
) -> Dict[str, Any]:
    """Score a detection layer against a reference layer; write the JSON summary (and layers).

    The reference is reprojected to the detections' CRS. ``output_layer_path`` (a GeoPackage)
    receives ``evaluated_detections`` (the detections with match/iou/ref_id) and
    ``missed_references`` (references that are false negatives under the paper's rule).
    Reading, then matching (iou_pairs), then scoring (score_matches), then writing.
    """
    progress = progress or Progress()
    if not 0.0 <= iou_threshold < 1.0:
        raise UserError(f"The IoU threshold must be in [0, 1); got {iou_threshold}.")
    json_output = _check_evaluation_outputs(
        detections_path, det_layer, reference_path, ref_layer, output_json, output_layer_path, overwrite
    )
    progress.report(0.0, "Reading layers")
    inputs = read_evaluation_inputs(detections_path, reference_path, det_layer, ref_layer)
    progress.check_cancelled()
    progress.report(0.2, "Matching polygons")
    pairs = iou_pairs(inputs.dets, inputs.refs)
    summary = {"detections": str(detections_path), "reference": str(reference_path),
               **score_matches(inputs, pairs, iou_threshold, progress)}
    progress.check_cancelled()
    if output_layer_path is not None:
        progress.report(0.8, "Writing layers")
        _write_match_layers(Path(output_layer_path), inputs.det_src, inputs.det_numbered, inputs.ref_src,
                            inputs.ref_numbered, pairs, iou_threshold)
        summary["output_layer"] = str(output_layer_path)
    if json_output is not None:
        _commit_json(json_output, summary, progress)
    progress.report(1.0, "Done")
    return summary


def read_evaluation_inputs(
    detections_path: Path | str, reference_path: Path | str, det_layer: Optional[str], ref_layer: Optional[str]
) -> EvaluationInputs:
    det_src = read_polygons(detections_path, det_layer, repair=False, what="detection layer")
    ref_src = read_polygons(reference_path, ref_layer, repair=False, what="reference layer")
    if bool(det_src.crs_wkt) != bool(ref_src.crs_wkt):
        missing = Path(detections_path).name if not det_src.crs_wkt else Path(reference_path).name
        raise UserError(f"{missing} has no coordinate reference system; assign one (e.g. in QGIS) and try again.")
    det_numbered, det_repaired = _repair(det_src.features)
    ref_all, ref_repaired = _repair(ref_src.features)
    ref_numbered = [(pos, f) for pos, f in ref_all if not is_negative_label(f.properties)]
    if det_src.crs_wkt and ref_src.crs_wkt:
        # Reprojection can fold a thin sliver over itself, so repair again afterwards.
        ref_numbered = [
            (pos, PolygonFeature(_valid(reproject_geometry(f.geometry, ref_src.crs_wkt, det_src.crs_wkt)), f.properties))
            for pos, f in ref_numbered
        ]
    return EvaluationInputs(det_src, ref_src, det_numbered, ref_numbered,
                            {"detections": det_repaired, "reference": ref_repaired}, len(ref_all) - len(ref_numbered))


def score_matches(inputs: EvaluationInputs, pairs: IouPairs, iou_threshold: float, progress: Progress) -> Dict[str, Any]:
    """Every score of the summary from the matched pairs: the paper's rule, one-to-one,
    the IoU sweep, AP over score_mean (when the detections have it) and pixel IoU."""
    dets, refs = inputs.dets, inputs.refs
    paper = _paper_rule_from_pairs(pairs, iou_threshold)
    matches = _one_to_one_matches(pairs, iou_threshold)
    one_to_one = scores_from_counts(len(matches), len(dets) - len(matches), len(refs) - len(matches))
    progress.check_cancelled()
    progress.report(0.4, "IoU sweep")
    sweep = _sweep_from_pairs(pairs, PAPER_SWEEP_STEP)
    ap_score: Optional[float] = None
    if "score_mean" in inputs.det_src.schema:
        scores = [_number_or_none(f.properties.get("score_mean")) for f in inputs.det_features]
        # A detection without a score ranks last rather than breaking the ranking.
        ap_score = _ap_score_from_pairs(pairs, [s if s is not None else -math.inf for s in scores], iou_threshold)
    progress.report(0.6, "Pixel IoU")
    return {
        "iou_threshold": float(iou_threshold),
        "n_detections": len(dets),
        "n_references": len(refs),
        "reference_negatives_ignored": inputs.n_negative,
        "paper": paper.as_dict(),
        "one_to_one": one_to_one.as_dict(),
        "pixel_iou": vector_pixel_iou(dets, refs),
        "ap_iou_sweep": sweep.ap,
        "iou_sweep": {"thresholds": sweep.thresholds, "precision": sweep.precision, "recall": sweep.recall},
        "ap_score": ap_score,
        "repaired": inputs.repaired,
        "warnings": _input_warnings(dets, refs),
    }


def _commit_json(json_output: StagedFile, summary: Dict[str, Any], progress: Progress) -> None:
    try:
        json_output.temp.write_text(json.dumps(summary, indent=2) + "\n")
        progress.check_cancelled()
        json_output.commit()
    finally:
        json_output.discard()


def _input_warnings(dets: Sequence[BaseGeometry], refs: Sequence[BaseGeometry]) -> List[str]:
    """Inputs that give a correct but probably unintended score: say so rather than stay silent."""
    warnings: List[str] = []
    for what, geoms in (("detection", dets), ("reference", refs)):
        if not geoms:
            warnings.append(f"The {what} layer holds no polygons, so every score is 0 or trivial.")
    if dets and refs and not shapely.box(*shapely.total_bounds(dets)).intersects(shapely.box(*shapely.total_bounds(refs))):
        warnings.append("The detection and reference layers do not overlap at all; check that each has its real CRS.")
    return warnings


def _check_evaluation_outputs(
    detections_path, det_layer, reference_path, ref_layer, output_json, output_layer_path, overwrite: bool
) -> Optional[StagedFile]:
    """Every output is checked before any work (engine/output_safety.py). The two evaluation
    layers are derived output and are replaced on a rerun; other layers are never touched."""
    inputs = [(detections_path, det_layer), (reference_path, ref_layer)]
    if output_layer_path is not None:
        if Path(output_layer_path).suffix.lower() != ".gpkg":
            raise UserError("The evaluation output layer must be a GeoPackage (.gpkg): it holds two layers.")
        for layer in (EVALUATED_LAYER, MISSED_LAYER):
            check_vector_output(output_layer_path, layer, inputs, overwrite=True)
    if output_json is None:
        return None
    final = check_file_output(output_json, "evaluation summary", (".json",), [p for p, _ in inputs] + [output_layer_path], overwrite)
    return StagedFile(final, overwrite)


def _write_match_layers(
    path: Path,
    det_src: Any,
    det_numbered: List[Tuple[int, PolygonFeature]],
    ref_src: Any,
    ref_numbered: List[Tuple[int, PolygonFeature]],
    pairs: IouPairs,
    iou_threshold: float,
) -> None:
    det_best, det_partner = pairs.best_for_detections()
    ref_best, ref_partner = pairs.best_for_references()
    det_schema = {k: v for k, v in det_src.schema.items() if k not in ("match", "iou", "ref_id")}
    det_schema.update({"match": "str:2", "iou": "float", "ref_id": "int"})
    evaluated = []
    for i, (_, f) in enumerate(det_numbered):
        props = dict(f.properties)
        props["match"] = "TP" if det_best[i] > iou_threshold else "FP"
        props["iou"] = float(det_best[i])
        # ref_id: 1-based position of the best-overlapping reference in its layer (as in missed_references).
        props["ref_id"] = ref_numbered[det_partner[i]][0] if det_partner[i] >= 0 else None
        evaluated.append(PolygonFeature(f.geometry, props))
    # Evaluation layers are derived output, recomputed on every run, so replacing them is safe;
    # other layers in the same GeoPackage (a user's corrected detections) are left alone.
    write_polygons(path, EVALUATED_LAYER, evaluated, det_src.crs_wkt, det_schema, overwrite=True)
    ref_schema = {k: v for k, v in ref_src.schema.items() if k not in ("ref_id", "best_iou", "det_id")}
    ref_schema.update({"ref_id": "int", "best_iou": "float", "det_id": "int"})
    missed = []
    for j, (position, f) in enumerate(ref_numbered):
        if ref_best[j] < iou_threshold:
            props = dict(f.properties)
            props["ref_id"] = position
            props["best_iou"] = float(ref_best[j])
            props["det_id"] = det_numbered[ref_partner[j]][0] if ref_partner[j] >= 0 else None
            missed.append(PolygonFeature(f.geometry, props))
    write_polygons(path, MISSED_LAYER, missed, det_src.crs_wkt, ref_schema, overwrite=True)
