"""The change section of the HTML report: counts by class per date, the area time series,
a histogram of headwall retreat rates and a map of growth areas.

It reads the GeoPackage written by analysis.change and draws with the morphometry report's
look (report._style, report._png). report.write_report adds this section whenever its input
file holds the change layers, so `make report INPUT=<change.gpkg>` shows both.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence

import fiona
import numpy as np
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from ..core.errors import UserError
from ..engine.vector_io import list_layers
from .change import CHANGE_CLASSES, LAYER_CHANGE, LAYER_GROWTH, LAYER_HISTORY, LAYER_SUMMARY, NOT_SEEN_AGAIN
from .report import SLUMP_COLOUR, _png, _style

CLASS_COLOURS = {"repeat": "#4f81bd", "new": "#9bbb59", "merged": "#8064a2", "split": "#f79646", NOT_SEEN_AGAIN: "#a5a5a5"}
GROWTH_COLOUR = SLUMP_COLOUR
# For change files written before the `growing` field: below this nothing counts as moved.
MOVED_M = 1.0


@dataclass
class ChangeTables:
    summary: List[Dict[str, Any]]
    change: List[Dict[str, Any]]
    history: List[Dict[str, Any]]  # every dated outline after the first, for the retreat rates
    change_geometries: List[BaseGeometry]
    growth_geometries: List[BaseGeometry]


def has_change_layers(path: "Path | str") -> bool:
    layers = list_layers(path) if Path(path).suffix.lower() == ".gpkg" else []
    return all(name in layers for name in (LAYER_CHANGE, LAYER_GROWTH, LAYER_SUMMARY))


def read_change_tables(path: "Path | str") -> ChangeTables:
    summary = [dict(f.properties) for f in _features(path, LAYER_SUMMARY)]
    change_features = _features(path, LAYER_CHANGE)
    growth = [shape(f.geometry) for f in _features(path, LAYER_GROWTH) if f.geometry is not None]
    return ChangeTables(
        sorted(summary, key=lambda r: str(r.get("date"))),
        [dict(f.properties) for f in change_features],
        [dict(f.properties) for f in _features(path, LAYER_HISTORY)] if LAYER_HISTORY in list_layers(path) else [],
        [shape(f.geometry) for f in change_features if f.geometry is not None],
        [g for g in growth if not g.is_empty],
    )


def _features(path: "Path | str", layer: str) -> list:
    with fiona.open(str(path), layer=layer) as src:
        return list(src)


def _dates(summary: Sequence[Dict[str, Any]]) -> List[dt.date]:
    return [dt.date.fromisoformat(str(r["date"])[:10]) for r in summary]


def class_counts_figure(summary: Sequence[Dict[str, Any]]):
    """Grouped bars: for each later date, its slumps by class and the earlier ones not seen
    again. A log axis, because repeats usually outnumber the rest a hundredfold."""
    import matplotlib.pyplot as plt

    rows = list(summary[1:])
    names = (*CHANGE_CLASSES, NOT_SEEN_AGAIN)
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    _style(ax)
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        counts = np.array([r.get(f"n_{name}") or 0 for r in rows], dtype=float)
        x = np.arange(len(rows)) + (k - (len(names) - 1) / 2) * width
        bars = ax.bar(x, np.where(counts > 0, counts, np.nan), width=width, color=CLASS_COLOURS[name], label=name.replace("_", " "))
        for bar, count in zip(bars, counts):
            ax.text(bar.get_x() + width / 2, max(count, 1) * 1.1, f"{int(count)}", ha="center", va="bottom", fontsize=6)
    ax.set_yscale("log")
    ax.set_ylim(0.8, max(max((r.get("n_slumps") or 1) for r in rows), 1) * 4)
    ax.set_xticks(np.arange(len(rows)))
    ax.set_xticklabels([str(r["date"])[:10] for r in rows])
    ax.set_ylabel("Number of slumps")
    ax.set_xlabel("Date (compared with the previous one)")
    ax.legend(fontsize=6, frameon=False, ncol=3, loc="upper center")
    return fig


def area_series_figure(summary: Sequence[Dict[str, Any]]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    _style(ax)
    dates = _dates(summary)
    total = np.array([r.get("total_area_m2") or 0.0 for r in summary]) / 1e4
    ax.plot(dates, total, marker="o", color=SLUMP_COLOUR, label="total slump area")
    growth = [(d, (r.get("growth_area_m2") or 0.0) / 1e4) for d, r in zip(dates, summary) if r.get("growth_area_m2") is not None]
    if growth:
        ax.bar([d for d, _ in growth], [g for _, g in growth], width=40, color="#4f81bd", alpha=0.6, label="area gained since previous")
    ax.set_ylabel("Area (ha)")
    ax.set_xlabel("Date")
    ax.tick_params(axis="x", labelsize=7, rotation=20)
    ax.legend(fontsize=7, frameon=False)
    return fig


def retreat_histogram_figure(change: Sequence[Dict[str, Any]]):
    """Maximum retreat rates of the growing slumps (headwall out at least the analysis's
    min_retreat_m); older files without the ``growing`` field use MOVED_M."""
    import matplotlib.pyplot as plt

    matched = [r for r in change if r.get("retreat_max_m_per_yr") is not None]
    growing = [r for r in matched if (r["growing"] if r.get("growing") is not None else r["retreat_max_m"] >= MOVED_M)]
    rates = np.array([r["retreat_max_m_per_yr"] for r in growing], dtype=float)
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    _style(ax)
    if rates.size:
        ax.hist(rates, bins=20, color=SLUMP_COLOUR, edgecolor="white", linewidth=0.5, label=f"growing slumps (n={rates.size})")
        ax.axvline(np.median(rates), color="black", linewidth=1.2, label=f"median {np.median(rates):.3g} m/yr")
        ax.legend(fontsize=7, frameon=False)
    else:
        ax.text(0.5, 0.5, "no growing slump", ha="center", va="center", transform=ax.transAxes, color="#777777")
    ax.set_xlabel("Maximum headwall retreat (m/yr)")
    ax.set_ylabel("Number of slumps")
    ax.set_title(f"{rates.size} of {len(matched)} matched slumps growing", fontsize=8)
    return fig


def growth_map_figure(tables: ChangeTables):
    """Latest outlines coloured by class, growth areas on top; zoomed on the largest growths
    when the layer spans far more than they do."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    for geometry, record in zip(tables.change_geometries, tables.change):
        colour = CLASS_COLOURS.get(record.get("change_class"), "#777777")
        for part in getattr(geometry, "geoms", [geometry]):
            ax.fill(*part.exterior.xy, facecolor=colour, alpha=0.35, edgecolor=colour, linewidth=0.6)
    for geometry in tables.growth_geometries:
        for part in getattr(geometry, "geoms", [geometry]):
            ax.fill(*part.exterior.xy, facecolor=GROWTH_COLOUR, alpha=0.9, edgecolor=GROWTH_COLOUR, linewidth=0.4)
    if tables.growth_geometries:  # rings sized by area keep small growths visible on a regional map
        centres = [g.representative_point() for g in tables.growth_geometries]
        sizes = np.sqrt([g.area for g in tables.growth_geometries])
        ax.scatter([c.x for c in centres], [c.y for c in centres], s=20 + 200 * sizes / sizes.max(),
                   facecolors="none", edgecolors=GROWTH_COLOUR, linewidths=1.0)
    handles = [plt.Rectangle((0, 0), 1, 1, color=CLASS_COLOURS[n], alpha=0.5) for n in CHANGE_CLASSES]
    handles.append(plt.Rectangle((0, 0), 1, 1, color=GROWTH_COLOUR))
    ax.legend(handles, [*CHANGE_CLASSES, "growth area"], fontsize=7, frameon=False, loc="best")
    ax.set_aspect("equal")
    ax.set_xlabel("Easting (m)")
    ax.set_ylabel("Northing (m)")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.tick_params(labelsize=7)
    ax.tick_params(axis="x", rotation=30)
    ax.set_title(f"{len(tables.change)} latest outlines by class; growth areas of every interval ({len(tables.growth_geometries)})", fontsize=8)
    return fig


def _counts_table(summary: Sequence[Dict[str, Any]]) -> str:
    names = (*CHANGE_CLASSES, "growing", NOT_SEEN_AGAIN)
    head = "".join(f"<th>{html.escape(n.replace('_', ' '))}</th>" for n in names)
    rows = []
    for r in summary:
        cells = "".join(f"<td>{'' if r.get('years_since_previous') is None else r.get(f'n_{n}', 0)}</td>" for n in names)
        change = r.get("area_change_m2")
        rows.append(
            f"<tr><th>{html.escape(str(r['date'])[:10])}</th><td>{r['n_slumps']}</td>{cells}"
            f"<td>{(r.get('total_area_m2') or 0) / 1e4:.2f}</td><td>{'' if change is None else format(change / 1e4, '+.2f')}</td>"
            f"<td>{'' if r.get('growth_area_m2') is None else format(r['growth_area_m2'] / 1e4, '.2f')}</td></tr>"
        )
    return ("<table><tr><th>Date</th><th>slumps</th>" + head +
            "<th>total area (ha)</th><th>area change (ha)</th><th>area gained (ha)</th></tr>" + "".join(rows) + "</table>")


def change_figures(tables: ChangeTables) -> List[tuple]:
    return [
        ("Slumps by class per date", class_counts_figure(tables.summary)),
        ("Slump area through time", area_series_figure(tables.summary)),
        ("Headwall retreat rates, every interval", retreat_histogram_figure(tables.history or tables.change)),
        ("Growth areas (later outline minus earlier)", growth_map_figure(tables)),
    ]


def change_section_html(path: "Path | str") -> str:
    """The report's change section, or an empty string when the file holds no change layers."""
    if not has_change_layers(path):
        return ""
    tables = read_change_tables(path)
    figures = "\n".join(
        f'<figure><img alt="{html.escape(label)}" src="data:image/png;base64,{_png(fig)}"><figcaption>{html.escape(label)}</figcaption></figure>'
        for label, fig in change_figures(tables)
    )
    return f"""<h2>Change through time</h2>
<p>Each date is compared with the one before it. A later slump that overlaps one earlier slump is a
<em>repeat</em>, several earlier slumps <em>merged</em>, one earlier slump that also became others
<em>split</em>, none <em>new</em>; earlier slumps with no later match are <em>not seen again</em>
(candidates for stabilised). A matched slump is <em>growing</em> when its headwall moved out at least
the analysis's minimum retreat. Retreat is the outward distance of the new boundary from the old outline
(see docs/CHANGE.md).</p>
{_counts_table(tables.summary)}
{figures}
"""


def check_report_path(output_html: "Path | str") -> None:
    output_html = Path(output_html)
    if output_html.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"The report is an HTML page; give an output name ending in .html (not {output_html.name}).")
    if not output_html.parent.is_dir():
        raise UserError(f"Folder {output_html.parent} does not exist; choose an existing folder for the report.")


def write_change_report(change_gpkg: "Path | str", output_html: "Path | str") -> Path:
    """The full report (morphometry of the latest outlines, then the change section)."""
    from .report import write_report

    check_report_path(output_html)
    if not has_change_layers(change_gpkg):
        raise UserError(f"{Path(change_gpkg).name} holds no change layers; run the change analysis first (make change).")
    return write_report(change_gpkg, output_html, layer=LAYER_CHANGE)


def overview_figure(change_gpkg: "Path | str", output_png: "Path | str") -> Path:
    """The four change figures side by side in one PNG (the README's picture)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    tables = read_change_tables(change_gpkg)
    board, axes = plt.subplots(2, 2, figsize=(9.0, 7.4))
    for ax, (_, fig) in zip(axes.ravel(), change_figures(tables)):
        ax.imshow(plt.imread(io.BytesIO(base64.b64decode(_png(fig))), format="png"))
        ax.axis("off")
    board.tight_layout()
    board.savefig(output_png, dpi=130, bbox_inches="tight")
    plt.close(board)
    return Path(output_png)
