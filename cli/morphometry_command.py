"""`morphometry`: shape, terrain and solar-radiation attributes for every polygon of a layer."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .interrupts import cli_progress
from .progress_bar import TextProgressBar


def register(subparsers: "argparse._SubParsersAction") -> None:
    p = subparsers.add_parser(
        "morphometry",
        help="add shape, terrain and solar radiation fields to slump polygons",
        description="Write a copy of a polygon layer with area, perimeter, circularity, elongation ... and, "
        "with a DEM, elevation, slope, aspect, TPI (100 m) and potential incoming solar radiation per polygon.",
    )
    p.add_argument("input", type=Path, help="polygon layer (GeoPackage, Shapefile, GeoJSON ...)")
    p.add_argument("output", type=Path, help="output GeoPackage (.gpkg)")
    p.add_argument("--dem", type=Path, default=None, help="elevation raster in any CRS (terrain fields stay empty without it)")
    p.add_argument("--input-layer", default=None, help="layer of a multi-layer input")
    p.add_argument("--layer", default=None, help="output layer name (default morphometry)")
    p.add_argument("--no-solar", action="store_true", help="skip potential incoming solar radiation (the slow part)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output layer (one with review edits only when --layer names it)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.morphometry import compute_morphometry
    from ..engine.output_safety import check_vector_output
    from ..engine.vector_io import input_layer_name

    layer = args.layer or "morphometry"
    input_layer = input_layer_name(args.input, args.input_layer)
    # Checked before the (long) terrain and solar work, not after it.
    check_vector_output(args.output, layer, [(args.input, input_layer), (args.dem, None)], args.overwrite, args.layer is not None)
    bar = TextProgressBar("morphometry", stream=sys.stderr)  # the current stderr, not the one at import
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = compute_morphometry(
                args.input, args.output, dem_path=args.dem, input_layer=input_layer, output_layer=layer,
                overwrite=args.overwrite, progress=cli_progress(bar), solar_radiation=not args.no_solar,
            )
        finally:
            bar.close()
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"morphometry: {out} (layer {layer})")
    return 0
