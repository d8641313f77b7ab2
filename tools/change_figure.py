"""The README's change figure: three dated inventories made from the real Banks Island outlines
(../shared/data/rts_inventories) with known change (tests/change_helpers.py: grown headwalls,
a merge, a split, dropped and new slumps; the third date grows the same headwalls again), run
through `make change`'s code and drawn by the change report.

usage: python tools/change_figure.py [OUTPUT.png]   (default docs/images/change_report.png)
"""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

if importlib.util.find_spec("thaw_slump_mapper") is None:  # PYTHONPATH may already name a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".venv" / "pkg"))
from thaw_slump_mapper.analysis.change import compare_inventories  # noqa: E402
from thaw_slump_mapper.analysis.change_report import overview_figure  # noqa: E402
from thaw_slump_mapper.engine.vector_io import PolygonFeature, write_polygons  # noqa: E402
from thaw_slump_mapper.tests.change_helpers import SCHEMA, build_truth, sweep, write_truth  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED", REPO.parent / "shared")) / "data"
DATES = "2019-07-15,2021-07-20,2023-07-18"


def main(output: Path) -> None:
    truth = build_truth(SHARED)
    with tempfile.TemporaryDirectory() as folder:
        earlier, later = write_truth(truth, Path(folder))
        third = Path(folder) / "third.gpkg"
        regrown = [sweep(g, *truth.expected_retreat[n]) if truth.expected_retreat.get(n, (0, 0))[0] > 0 else g
                   for g, n in zip(truth.later, truth.later_names)]
        write_polygons(third, "slumps", [PolygonFeature(g, {"name": n}) for g, n in zip(regrown, truth.later_names)],
                       truth.crs_wkt, SCHEMA)
        gpkg = Path(folder) / "change.gpkg"
        result = compare_inventories([earlier, later, third], gpkg, dates=DATES)
        for row in result.summary:
            print(row)
        overview_figure(gpkg, output)
    print(f"figure written to {output}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "images" / "change_report.png")
