"""`build-chips`: a training-chip folder from the shared Arctic chips or Sentinel-2 sites."""
from __future__ import annotations

import argparse
from pathlib import Path

from .interrupts import cli_progress
from .progress_bar import TextProgressBar


def register(subparsers: "argparse._SubParsersAction") -> None:
    p = subparsers.add_parser(
        "build-chips",
        help="make a training-chip folder from the Arctic RTS chips or the Sentinel-2 sites",
        description=(
            "arctic_rts_chips: rasterise GroundTruth_Final.geojson on each chip (band 4 is ignored). "
            "sentinel2_sites: rasterise each site's expert consensus, outside the mapped area ignored, "
            "in overlapping 128 px windows. Writes images/, masks/ and manifest.csv."
        ),
    )
    p.add_argument("source", type=Path, help="the arctic_rts_chips or sentinel2_sites folder of ../shared/data")
    p.add_argument("output", type=Path, help="chip folder to write")
    p.add_argument("--val-every", type=int, default=0, help="put every n-th chip in the val split (default 0: all train)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..model.arctic_chips_builder import build_arctic_chips
    from ..model.sentinel2_chips_builder import build_sentinel2_chips

    bar = TextProgressBar("chips")
    try:
        if any(Path(args.source).glob("*_S2_*.tif")):
            records = build_sentinel2_chips(args.source, args.output, progress=cli_progress(bar))
        else:
            records = build_arctic_chips(args.source, args.output, args.val_every, cli_progress(bar))
    finally:
        bar.close()
    print(f"{len(records)} chips, {sum(r.slump_pixels for r in records)} slump pixels -> {args.output}")
    return 0
