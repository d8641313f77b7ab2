"""`detect-batch`: map many scenes into one inventory, on this machine or a Dask cluster."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.progress import Progress
from ..engine.bands import parse_band_list
from .progress_bar import TextProgressBar


def register(subparsers: "argparse._SubParsersAction") -> None:
    p = subparsers.add_parser(
        "detect-batch",
        help="detect thaw slumps in many scenes into one inventory",
        description=(
            "Detect thaw slumps in every scene of a folder, a glob or a .txt/.csv list and merge them into one "
            "GeoPackage (slumps, de-duplicated where scenes overlap, and a `scenes` layer). Runs on a Dask "
            "LocalCluster sized to this machine, or on a running Dask cluster (--scheduler). A rerun with the "
            "same output maps only the scenes not done yet. See docs/BATCH.md."
        ),
    )
    p.add_argument("inputs", help="a folder of rasters, a glob such as 'scenes/*.tif' (quoted), or a .txt/.csv list of paths")
    p.add_argument("output", type=Path, help="the merged inventory (.gpkg); per-scene results go to <output stem>.scenes/")
    p.add_argument("--scheduler", default="", help="tcp://host:port of a running Dask scheduler (default: a LocalCluster here)")
    p.add_argument("--workers", type=int, default=None, help="LocalCluster workers (default: one per GPU, else sized to cores and memory)")
    p.add_argument("--serial", action="store_true", help="no Dask: map the scenes one after another in this process")
    p.add_argument("--checkpoint", type=Path, default=None, help="model checkpoint (.pt); default: the bundled model")
    p.add_argument("--bands", default="", help="1-based bands in the model's order for scenes whose list entry names none, e.g. 1,2,3")
    p.add_argument("--threshold", type=float, default=None, help="probability threshold (default: the checkpoint's)")
    p.add_argument("--min-area", type=float, default=None, help="drop polygons smaller than this many m2 (default: the checkpoint's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--backend", default="auto", help="auto, onnxruntime or torch (default auto)")
    p.add_argument("--overwrite", action="store_true", help="replace an output this batch did not write, or redo scenes mapped with other settings")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.batch import BatchRequest, run_batch

    request = BatchRequest(
        inputs=args.inputs, output_path=args.output, checkpoint_path=args.checkpoint, bands=parse_band_list(args.bands),
        threshold=args.threshold, min_area_m2=args.min_area, device=args.device, backend=args.backend,
        scheduler=args.scheduler or None, workers=args.workers, serial=args.serial, overwrite=args.overwrite,
    )
    bar = TextProgressBar("batch")
    try:
        result = run_batch(request, Progress(bar))
    finally:
        bar.close()
    print(f"{result.n_done}/{result.n_scenes - result.n_skipped} scenes done ({result.n_done_before} from earlier runs), "
          f"{result.n_failed} failed, {result.n_skipped} skipped, in {result.elapsed_s:.1f} s on {result.engine}")
    for name, reason in result.failures:
        print(f"warning: {name} failed: {reason}", file=sys.stderr)
    state = "written" if result.inventory_written else "unchanged (nothing new)"
    print(f"inventory: {result.output_path} ({result.n_slumps} slumps, {result.n_merged} overlap duplicates merged; {state})")
    return 3 if result.n_done == 0 else 0
