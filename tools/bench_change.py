"""Benchmark: the change analysis on 2,620 real slump outlines against 2,620 later ones.

The 262 real Banks Island outlines (../shared/data/rts_inventories) are tiled ten times, 30 km
apart; in the later inventory every third one has a headwall moved 5-24 m (tests/change_helpers
sweep), the rest are unchanged. Prints the seconds of the matching + classification + measures
(analyse_change, no file I/O), the slumps per second, and the peak resident memory.

usage: SHARED=../shared python tools/bench_change.py [COPIES]
"""
from __future__ import annotations

import datetime as dt
import importlib.util
import os
import resource
import sys
import time
from pathlib import Path

if importlib.util.find_spec("thaw_slump_mapper") is None:  # PYTHONPATH may already name a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".venv" / "pkg"))
from shapely import affinity  # noqa: E402

from thaw_slump_mapper.analysis.change import Slump, analyse_change  # noqa: E402
from thaw_slump_mapper.engine.vector_io import read_polygons  # noqa: E402
from thaw_slump_mapper.tests.change_helpers import BANKS, sweep  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED", REPO.parent / "shared")) / "data"
EARLIER, LATER = dt.date(2019, 7, 15), dt.date(2021, 7, 20)


def inventories(copies: int):
    outlines = [f.geometry for f in read_polygons(SHARED / BANKS).features]
    earlier, later = [], []
    for copy in range(copies):
        for i, outline in enumerate(outlines):
            moved = affinity.translate(outline, copy * 30000.0, 0.0)
            earlier.append(moved)
            later.append(sweep(moved, 5.0 + i % 20, (i * 37) % 360) if i % 3 == 0 else moved)
    return earlier, later


def slumps(geometries, date):
    return [Slump(g, f"{date}-{i}", date, "bench", i, area_m2=g.area, perimeter_m=g.length) for i, g in enumerate(geometries)]


def main(copies: int) -> None:
    earlier, later = inventories(copies)
    started = time.perf_counter()
    result = analyse_change({EARLIER: slumps(earlier, EARLIER), LATER: slumps(later, LATER)})
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = result.summary[-1]
    print(f"{len(earlier)} earlier vs {len(later)} later slumps: {seconds:.1f} s, {len(later) / seconds:.0f} slumps/s, "
          f"peak RSS {peak_mb:.0f} MB (repeat {row['n_repeat']}, growth {row['growth_area_m2'] / 1e4:.1f} ha)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
