"""`demo`: detect thaw slumps on the bundled real scene, compare them with the experts'
reference outlines shipped beside it, and draw both on a preview PNG."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

from ..core.file_names import DEMO_SCENE
from .interrupts import cli_progress
from .progress_bar import TextProgressBar

REPO = Path(__file__).resolve().parent.parent
# A Copernicus Sentinel-2 clip (10 m) and its expert consensus outlines; see demo/README.md.
DEMO_REFERENCE = REPO / "demo" / "peel_plateau_reference_outlines.geojson"
ATTRIBUTION = "Contains modified Copernicus Sentinel data 2021"


def register(subparsers: "argparse._SubParsersAction") -> None:
    p = subparsers.add_parser("demo", help="run detection on the bundled demo scene", description=__doc__)
    p.add_argument("--output-dir", type=Path, default=Path("out/demo"), help="folder for the results (default out/demo)")
    p.add_argument("--checkpoint", type=Path, default=None, help="model checkpoint (default: the bundled model)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.detect import DetectionRequest, count_and_area, run_detection
    from ..engine.preview import write_preview
    from ..engine.vector_io import read_polygons

    out_dir: Path = args.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    gpkg = out_dir / "demo_slumps.gpkg"
    # The demo's own output is replaced on every run; user outputs never are (see detect).
    request = DetectionRequest(input_path=DEMO_SCENE, output_path=gpkg, checkpoint_path=args.checkpoint, overwrite=True)
    bar = TextProgressBar("demo")
    try:
        result = run_detection(request, cli_progress(bar))
    finally:
        bar.close()
    reference = [f.geometry for f in read_polygons(DEMO_REFERENCE).features]
    preview = write_preview(
        DEMO_SCENE, result.features, [1, 2, 3], out_dir / "demo_preview.png",
        title=f"{count_and_area(result.n_slumps, result.total_area_m2)}; dashed: {len(reference)} expert outlines\n"
              f"{result.checkpoint_summary.split(':')[0]}. {ATTRIBUTION}",
        reference=reference,
    )
    print(result.checkpoint_summary)
    if not result.trained_model:
        print("NOTE: the model is UNTRAINED; the polygons are not real detections.")
    print(result.summary())
    print(f"polygons:    {gpkg.resolve()}")
    print(f"probability: {result.probability_path.resolve()}")
    print(f"preview:     {preview.resolve()}")
    print(f"reference:   {DEMO_REFERENCE.resolve()}")
    print(reference_summary([f.geometry for f in result.features], reference, bundled=args.checkpoint is None))
    print(f"Scene: {ATTRIBUTION} (Peel Plateau, Canada, 2021-08-21, 10 m).")
    return 0


def reference_summary(detected: List, reference: List, bundled: bool = True) -> str:
    """How the detections compare with the experts' outlines, said plainly: at Sentinel-2's
    10 m a slump is a few pixels wide, and the bundled model's outlines rarely reach IoU 0.5."""
    from ..analysis.evaluation import iou_pairs

    pairs = iou_pairs(detected, reference)
    best_iou, _ = pairs.best_for_references()
    matched = int((best_iou > 0.5).sum())
    touched = int((best_iou > 0).sum())
    det_best, _ = pairs.best_for_detections()
    lines = [
        f"expert reference: {len(reference)} slumps; found at IoU > 0.5: {matched}; touched by a detection: {touched}; "
        f"detections touching no reference: {int((det_best == 0).sum())} of {len(detected)}"
    ]
    if matched * 2 < len(reference):
        why = (" (mostly trained on 2 m imagery; this site was one of its training scenes, so this is no accuracy figure)"
               if bundled else "")
        lines.append(
            f"NOTE: the {'bundled ' if bundled else ''}model finds only {matched} of the {len(reference)} expert-drawn slumps "
            f"at 10 m{why}; the preview shows the reference outlines (dashed) beside the detections."
        )
    return "\n".join(lines)
