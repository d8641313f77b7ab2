"""`export-labels`: cut training chips (images, 0/1/255 masks, manifest.csv) and an
ARTS-schema GeoJSON from labelled polygons on an image."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.bands import parse_band_list
from .interrupts import cli_progress
from .progress_bar import TextProgressBar


def register(subparsers: "argparse._SubParsersAction") -> None:
    p = subparsers.add_parser("export-labels", help="write training chips from labelled polygons", description=__doc__)
    p.add_argument("image", type=Path, help="the raster the polygons were drawn on")
    p.add_argument("labels", type=Path,
                   help="polygons: a reviewed detection layer (rejected = negative) or any layer, optionally with TrainClass")
    p.add_argument("output", type=Path, help="folder to write (images/, masks/, manifest.csv, labels_arts.geojson)")
    p.add_argument("--labels-layer", default=None, help="layer name inside the labels file")
    p.add_argument("--gsd", type=float, default=None,
                   help="chip pixel size in metres (default: the checkpoint's, else the image's)")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint whose GSD is the default")
    p.add_argument("--chip-size", type=int, default=256, help="smallest chip side in pixels (default 256)")
    p.add_argument("--buffer", type=float, default=300.0, help="metres of context around each slump (paper: 300)")
    p.add_argument("--negatives-per-positive", type=float, default=1.0, help="random background chips per positive chip")
    p.add_argument("--bands", default="", help="1-based image bands to copy, e.g. 1,2,3 (default first three)")
    p.add_argument("--creator-lab", default="", help="CreatorLab written into the ARTS GeoJSON")
    p.add_argument("--base-map-source", default=None, help="BaseMapSource (default: the image file name)")
    p.add_argument("--base-map-date", default="", help="BaseMapDate, e.g. 2021-07-15")
    p.add_argument("--unreviewed", choices=("positive", "negative", "ignore"), default="positive",
                   help="what unreviewed detections count as (default positive)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of chips for validation (by spatial group)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in the same folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.label_export import ExportOptions, export_labels
    from ..engine.output_safety import staged_chip_export

    options = ExportOptions(
        labels_layer=args.labels_layer, gsd_m=args.gsd,
        chip_size_px=args.chip_size, buffer_m=args.buffer, negatives_per_positive=args.negatives_per_positive,
        creator_lab=args.creator_lab, base_map_source=args.base_map_source, base_map_date=args.base_map_date,
        seed=args.seed, checkpoint_path=args.checkpoint, bands=parse_band_list(args.bands),
        val_fraction=args.val_fraction, unreviewed=args.unreviewed,
    )
    bar = TextProgressBar("export-labels")
    progress = cli_progress(bar)
    try:
        with staged_chip_export(args.output, [args.image, args.labels, args.checkpoint], args.overwrite, progress) as folder:
            summary = export_labels(args.image, args.labels, folder, options, progress)
    finally:
        bar.close()
    print(
        f"{summary.n_chips} chips at {summary.gsd_m:g} m ({summary.n_positive_chips} slump, {summary.n_negative_chips} rejected, "
        f"{summary.n_background_chips} background; {summary.n_train} train, {summary.n_val} val) -> {args.output}"
    )
    for warning in summary.warnings:
        print(f"warning: {warning}")
    return 0
