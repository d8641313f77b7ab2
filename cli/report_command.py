"""`report`: one self-contained HTML page of figures and tables for a slump polygon layer."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .interrupts import cli_progress
from .progress_bar import TextProgressBar


def register(subparsers: "argparse._SubParsersAction") -> None:
    p = subparsers.add_parser(
        "report",
        help="write an HTML report of slump morphometry",
        description="Histograms, aspect rose, map overview and summary tables, compared with the paper's Beiluhe values.",
    )
    p.add_argument("input", type=Path, help="polygon layer (ideally the output of `morphometry`)")
    p.add_argument("output", type=Path, help="output HTML file")
    p.add_argument("--image", type=Path, default=None, help="raster shown under the polygons in the map overview")
    p.add_argument("--layer", default=None, help="layer of a multi-layer input")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.report import write_report
    from ..engine.output_safety import staged_file_output

    bar = TextProgressBar("report", stream=sys.stderr)  # the current stderr, not the one at import
    progress = cli_progress(bar)
    try:
        # A missing output folder is created, but only once the report is complete.
        with staged_file_output(
            args.output, "report", (".html", ".htm"), [args.input, args.image], args.overwrite, progress, create_folder=True
        ) as temp:
            write_report(args.input, temp, image_path=args.image, layer=args.layer, progress=progress)
        out = args.output
    finally:
        bar.close()
    print(f"report: {out}")
    return 0
