"""`detect`: find thaw slumps in a raster and write polygons + a probability GeoTIFF."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..engine.bands import parse_band_list
from ..engine.extent import parse_bbox
from .interrupts import cli_progress
from .progress_bar import TextProgressBar


def register(subparsers: "argparse._SubParsersAction") -> None:
    p = subparsers.add_parser(
        "detect",
        help="detect thaw slumps in a raster",
        description="Detect thaw slumps: writes slump polygons (GeoPackage) and a probability GeoTIFF (percent).",
    )
    p.add_argument("input", type=Path, help="input raster (GeoTIFF or any GDAL raster with a CRS)")
    p.add_argument("output", type=Path, help="output GeoPackage (.gpkg) for the polygons")
    p.add_argument("--checkpoint", type=Path, default=None, help="model checkpoint (.pt); default: the bundled model")
    p.add_argument("--bands", default="", help="1-based raster bands in the model's order, e.g. 1,2,3 (default: RGB / PlanetScope BGRN)")
    p.add_argument(
        "--probability",
        type=Path,
        default=None,
        help="probability GeoTIFF (default: <output>_probability.tif; <output>_<layer>_probability.tif for another --layer)",
    )
    p.add_argument("--extent", default="", help="xmin,ymin,xmax,ymax in the raster's CRS (default: the whole raster)")
    p.add_argument("--threshold", type=float, default=None, help="probability threshold (default: the checkpoint's)")
    p.add_argument("--min-area", type=float, default=None, help="drop polygons smaller than this many m2 (default: the checkpoint's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto: CUDA when present)")
    p.add_argument("--backend", default="auto", help="auto, onnxruntime or torch (default auto)")
    p.add_argument("--tta", default="none", choices=("none", "flip2", "d4"),
                   help="test-time augmentation: none (default), flip2 (2 passes a tile) or d4 (8 passes: "
                        "rotations and mirrors averaged; costs 8x the inference time)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "int8"),
                   help="onnxruntime on the CPU: auto (default: int8 on x86 CPUs with VNNI or AVX2 for a trained checkpoint, fp32 "
                        "elsewhere and on CUDA), fp32, or int8 (about 1.9x faster with VNNI, 1.5x with AVX2; "
                        "parity in tests/engine/test_int8_parity.py)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="tiles per network call, 1 or more (default: 4 on the CPU, fewer for tiles over 512 px; by free GPU memory on CUDA)")
    p.add_argument("--tile", type=int, default=None,
                   help="tile size in px, a multiple of 32 from 256 to 4096 (default: the checkpoint's, 512). 1024 runs "
                        "about 1.3x faster on the CPU but changes what the network sees (BENCHMARKS.md, 'Tile size')")
    p.add_argument("--layer", default=None, help="layer name in the GeoPackage (default thaw_slumps)")
    p.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing layer of the same name and its probability raster (a layer with review edits only when --layer names it)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..core.file_names import DEFAULT_LAYER
    from ..engine.detect import DetectionRequest, run_detection

    request = DetectionRequest(
        input_path=args.input, output_path=args.output, probability_path=args.probability,
        checkpoint_path=args.checkpoint, bands=parse_band_list(args.bands), extent=parse_bbox(args.extent),
        threshold=args.threshold, min_area_m2=args.min_area, device=args.device, backend=args.backend,
        precision=args.precision, tta=args.tta, batch_size=args.batch_size, tile_size=args.tile,
        layer_name=args.layer or DEFAULT_LAYER, overwrite=args.overwrite,
        layer_named=args.layer is not None,
    )
    bar = TextProgressBar("detect")
    try:
        result = run_detection(request, cli_progress(bar))
    finally:
        bar.close()
    for line in result.log:
        print(line, file=sys.stderr)
    if not result.trained_model:
        print("warning: this checkpoint is UNTRAINED; its polygons are not slumps (train one with `train`).", file=sys.stderr)
    print(result.summary())
    print(f"polygons:    {result.output_path} (layer {result.layer_name})")
    print(f"probability: {result.probability_path}")
    return 0
