"""`change`: compare dated slump layers; classify new, repeat, merged, split and not-seen-again
slumps and measure area change and headwall retreat (analysis.change)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.progress import Progress
from .progress_bar import TextProgressBar


def register(subparsers: "argparse._SubParsersAction") -> None:
    p = subparsers.add_parser("change", help="compare dated slump layers: new, growing, merged, split, not seen again",
                              description=__doc__)
    p.add_argument("inputs", nargs="+", help="two or more polygon layers (any OGR format; file.gpkg|layername=NAME for one layer)")
    p.add_argument("--output", "-o", type=Path, required=True, help="GeoPackage to write (layers change, not_seen_again, "
                   "growth_areas, change_summary, change_history)")
    p.add_argument("--dates", default=None, help="one date per layer, in order: 2019-07-15,2021-07-20 "
                   "(without it each layer needs a date field)")
    p.add_argument("--date-field", default=None, help="field holding each slump's image date (default: date, image_date, "
                   "acq_date, BaseMapDate, year ...)")
    p.add_argument("--min-overlap", type=float, default=None,
                   help="overlap, as a share of the smaller slump, that makes two outlines the same slump (default 0.1)")
    p.add_argument("--min-retreat", type=float, default=None,
                   help="headwall move in m that makes a matched slump 'growing' (default 1; use the pixel size)")
    p.add_argument("--report", type=Path, default=None, help="also write the HTML change report here")
    p.add_argument("--overwrite", action="store_true", help="replace the change layers already in the output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.change import DEFAULT_MIN_OVERLAP, DEFAULT_MIN_RETREAT_M, compare_inventories

    if args.report is not None:
        from ..analysis.change_report import check_report_path

        check_report_path(args.report)
    bar = TextProgressBar("change", stream=sys.stderr)
    try:
        result = compare_inventories(
            args.inputs, args.output, dates=args.dates, date_field=args.date_field,
            min_overlap=DEFAULT_MIN_OVERLAP if args.min_overlap is None else args.min_overlap,
            overwrite=args.overwrite, progress=Progress(bar),
            min_retreat_m=DEFAULT_MIN_RETREAT_M if args.min_retreat is None else args.min_retreat,
        )
    finally:
        bar.close()
    counts = result.counts
    print(f"dates: {', '.join(result.dates)} (compared in {result.crs_name})")
    print(f"latest date: repeat {counts['repeat']}, new {counts['new']}, merged {counts['merged']}, "
          f"split {counts['split']}; growing {counts['growing']}; not seen again {counts['not_seen_again']}")
    for row in result.summary[1:]:
        rate = row["retreat_max_m_per_yr_median"]
        print(f"{row['date']}: {row['n_slumps']} slumps, {row['total_area_m2'] / 1e4:.2f} ha, area change "
              f"{row['area_change_m2'] / 1e4:+.2f} ha, growth {row['growth_area_m2'] / 1e4:.2f} ha, {row['n_growing']} growing "
              f"(median max retreat {'n/a' if rate is None else format(rate, '.2f') + ' m/yr'})")
    print(f"change layers written to {result.output_path}", file=sys.stderr)
    if args.report is not None:
        from ..analysis.change_report import write_change_report

        print(f"report: {write_change_report(result.output_path, args.report)}", file=sys.stderr)
    return 0
