"""`evaluate`: score a slump polygon layer against a reference layer (paper rule, one-to-one,
pixel IoU, IoU-sweep AP, score AP) and write a JSON summary."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .interrupts import cli_progress
from .progress_bar import TextProgressBar


def register(subparsers: "argparse._SubParsersAction") -> None:
    p = subparsers.add_parser("evaluate", help="score detections against reference polygons", description=__doc__)
    p.add_argument("detections", type=Path, help="detected polygons (any OGR format)")
    p.add_argument("reference", type=Path, help="reference polygons; reprojected to the detections' CRS")
    p.add_argument("output", type=Path, help="summary JSON to write")
    p.add_argument("--layer-output", type=Path, default=None,
                   help="GeoPackage for the detections with match/iou/ref_id and the missed references")
    p.add_argument("--iou-threshold", type=float, default=0.5, help="IoU a true positive must exceed (default 0.5)")
    p.add_argument("--det-layer", default=None, help="layer name inside the detections file")
    p.add_argument("--ref-layer", default=None, help="layer name inside the reference file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing summary JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.evaluation import evaluate_layers

    bar = TextProgressBar("evaluate")
    try:
        summary = evaluate_layers(
            args.detections, args.reference, args.output, args.layer_output, args.iou_threshold,
            det_layer=args.det_layer, ref_layer=args.ref_layer, progress=cli_progress(bar), overwrite=args.overwrite,
        )
    finally:
        bar.close()  # so an error starts on its own line, not on the bar's
    paper, one = summary["paper"], summary["one_to_one"]
    print(
        f"paper rule (IoU > {summary['iou_threshold']:g}): TP {paper['tp']} FP {paper['fp']} FN {paper['fn']} "
        f"precision {paper['precision']:.3f} recall {paper['recall']:.3f} F1 {paper['f1']:.3f}"
    )
    print(f"one-to-one: TP {one['tp']} FP {one['fp']} FN {one['fn']} F1 {one['f1']:.3f}")
    ap_score = summary["ap_score"]
    print(
        f"pixel IoU {summary['pixel_iou']:.3f}, AP (IoU sweep) {summary['ap_iou_sweep']:.3f}, "
        f"AP (score) {'n/a (no score_mean)' if ap_score is None else format(ap_score, '.3f')}"
    )
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    repaired = summary["repaired"]
    if repaired["detections"] or repaired["reference"]:
        print(f"repaired invalid geometries: {repaired['detections']} detection(s), {repaired['reference']} reference(s)")
    print(f"summary written to {args.output}", file=sys.stderr)
    return 0
