"""A self-contained HTML report of slump morphometry, with figures like the paper's.

Figures are matplotlib PNGs (Agg backend, no display needed) embedded as base64, so the
page is one file that opens anywhere. Each histogram carries the Beiluhe values of
Huang et al. (2020) as a dashed mean line and a shaded range, for comparison. Layers without
morphometry fields (e.g. raw inventories) get their shape fields computed on the fly.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..core.errors import UserError
from ..core.progress import Progress
from ..engine.vector_io import read_polygons

# Beiluhe, Huang et al. 2020 (RSE 237:111534), see ../shared/data/README.md
PAPER = {
    "area_ha": {"min": 0.3, "max": 35.2, "mean": 3.5},
    "perimeter_m": {"min": 270.0, "max": 8910.0, "mean": 1158.0},
    "circularity": {"min": 0.06, "max": 0.63, "mean": 0.34},
    "slope_mean": {"min": 2.4, "max": 12.1, "mean": 5.5},
    "tpi_std_mean": {"mean": -0.17},
    "pisr_mean": {"min": 8.72, "max": 9.04},
}
HISTOGRAMS = (
    ("area_ha", "Area (ha)", True),
    ("perimeter_m", "Perimeter (m)", True),
    ("circularity", "Circularity 4\u03c0A/P\u00b2", False),
    ("slope_mean", "Mean slope (\u00b0)", False),
    ("tpi_std_mean", "TPI, 100 m, standardised", False),
    ("pisr_mean", "Solar radiation (kWh/m\u00b2/day)", False),
)
TABLE_FIELDS = (
    ("area_ha", "Area (ha)"), ("perimeter_m", "Perimeter (m)"), ("circularity", "Circularity"),
    ("elongation", "Elongation"), ("solidity", "Solidity"), ("elev_mean", "Elevation (m)"),
    ("relief_m", "Relief (m)"), ("slope_mean", "Slope (\u00b0)"), ("tpi_mean", "TPI (m)"),
    ("tpi_std_mean", "TPI (standardised)"), ("pisr_mean", "PISR (kWh/m\u00b2/day)"),
)
SLUMP_COLOUR = "#c0504d"


def _values(records: Sequence[Dict], name: str) -> np.ndarray:
    out = [r.get(name) for r in records]
    return np.array([float(v) for v in out if v is not None and isinstance(v, (int, float)) and math.isfinite(v)])


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _style(ax) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def histogram_figure(records: Sequence[Dict], name: str, label: str, log: bool):
    import matplotlib.pyplot as plt

    values = _values(records, name)
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    _style(ax)
    paper = PAPER.get(name, {})
    if values.size:
        bins = np.geomspace(values.min(), values.max(), 20) if log and values.min() > 0 and values.max() > values.min() else 20
        ax.hist(values, bins=bins, color=SLUMP_COLOUR, edgecolor="white", linewidth=0.5, label=f"this layer (n={values.size})")
        ax.axvline(values.mean(), color="black", linewidth=1.2, label=f"mean {values.mean():.3g}")
        if log and values.min() > 0:
            ax.set_xscale("log")
    else:
        ax.text(0.5, 0.5, "no values\n(run morphometry with a DEM)", ha="center", va="center", transform=ax.transAxes, color="#777777")
    if "min" in paper:
        ax.axvspan(paper["min"], paper["max"], color="#4f81bd", alpha=0.12, label=f"Beiluhe range {paper['min']:g}-{paper['max']:g}")
    if "mean" in paper:
        ax.axvline(paper["mean"], color="#4f81bd", linestyle="--", linewidth=1.2, label=f"Beiluhe mean {paper['mean']:g}")
    ax.set_xlabel(label)
    ax.set_ylabel("Number of slumps")
    ax.legend(fontsize=7, frameon=False)
    return fig


def aspect_rose_figure(records: Sequence[Dict]):
    import matplotlib.pyplot as plt

    aspects = _values(records, "aspect_mean")
    fig = plt.figure(figsize=(3.6, 3.6))
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_zero_location("N")
    ax.set_theta_direction(-1)
    if aspects.size:
        counts, edges = np.histogram((aspects + 11.25) % 360.0, bins=16, range=(0, 360))
        centres = np.radians(edges[:-1])
        ax.bar(centres, counts, width=np.radians(22.5) * 0.9, color=SLUMP_COLOUR, edgecolor="white")
    else:
        ax.text(0.5, 0.5, "no aspect values\n(needs a DEM)", ha="center", va="center", transform=ax.transAxes, color="#777777")
    ax.set_xticks(np.radians(np.arange(0, 360, 45)))
    ax.set_xticklabels(["N", "NE", "E", "SE", "S", "SW", "W", "NW"])
    ax.set_title("Aspect of slumps (count per 22.5\u00b0)", fontsize=9)
    return fig


def map_figure(geoms, crs_wkt: str, image_path: Optional[Path]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    drawn = list(geoms)
    if image_path is not None:
        import rasterio
        from rasterio.enums import Resampling

        from ..engine.vector_io import reproject_geometry

        with rasterio.open(image_path) as src:
            scale = max(src.width, src.height) / 1200.0
            out_shape = (min(src.count, 3), max(1, int(src.height / max(scale, 1))), max(1, int(src.width / max(scale, 1))))
            data = src.read(list(range(1, out_shape[0] + 1)), out_shape=out_shape, resampling=Resampling.average, masked=True).astype("float64")
            bounds = src.bounds
            if crs_wkt and src.crs is not None:
                drawn = [reproject_geometry(g, crs_wkt, src.crs) for g in geoms]
        shown = []
        for band in data:  # 2-98 % stretch per band for display
            valid = band.compressed()
            lo, hi = np.percentile(valid, [2, 98]) if valid.size else (0, 1)
            shown.append(np.clip((band.filled(lo) - lo) / max(hi - lo, 1e-9), 0, 1))
        picture = np.dstack(shown) if len(shown) == 3 else shown[0]
        ax.imshow(picture, extent=(bounds.left, bounds.right, bounds.bottom, bounds.top), cmap="gray")
    for g in drawn:
        for part in getattr(g, "geoms", [g]):
            x, y = part.exterior.xy
            ax.fill(x, y, facecolor=SLUMP_COLOUR, alpha=0.35 if image_path else 0.8, edgecolor=SLUMP_COLOUR, linewidth=0.8)
    ax.set_aspect("equal")
    ax.set_xlabel("Easting (map units)")
    ax.set_ylabel("Northing (map units)")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.tick_params(labelsize=7)
    ax.set_title(f"{len(drawn)} slump polygons" + (" over the image" if image_path else ""), fontsize=9)
    return fig


def _summary_rows(records: Sequence[Dict]) -> List[str]:
    rows = []
    for name, label in TABLE_FIELDS:
        v = _values(records, name)
        paper = PAPER.get(name if name != "area_ha" else "area_ha", {})
        ref = ", ".join(f"{k} {paper[k]:g}" for k in ("min", "mean", "max") if k in paper) or ""
        if v.size:
            cells = [f"{v.size}", f"{v.min():.3g}", f"{np.median(v):.3g}", f"{v.mean():.3g}", f"{v.max():.3g}", f"{v.std():.3g}"]
        else:
            cells = ["0", "", "", "", "", ""]
        rows.append("<tr><th>" + html.escape(label) + "</th>" + "".join(f"<td>{c}</td>" for c in cells) + f"<td>{html.escape(ref)}</td></tr>")
    return rows


def _facing_table(records: Sequence[Dict]) -> str:
    names = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
    counts = {n: 0 for n in names}
    for r in records:
        if r.get("facing") in counts:
            counts[r["facing"]] += 1
    total = sum(counts.values())
    if not total:
        return "<p>No aspect values (the layer has no terrain fields; run morphometry with a DEM).</p>"
    cells = "".join(f"<td>{counts[n]} ({100 * counts[n] / total:.0f} %)</td>" for n in names)
    return "<table><tr>" + "".join(f"<th>{n}</th>" for n in names) + f"</tr><tr>{cells}</tr></table>"


def write_report(
    polygons_path: "Path | str",
    output_html: "Path | str",
    image_path: "Path | str | None" = None,
    layer: Optional[str] = None,
    progress: Optional[Progress] = None,
) -> Path:
    """Write the report and return its path."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    progress = progress or Progress()
    output_html = Path(output_html)
    image = _check_report_paths(output_html, image_path)
    data, records = _report_records(polygons_path, layer, progress)
    figures = _report_figures(records, data, image, progress)
    from .change_report import change_section_html  # empty unless the file holds change layers

    change_html = change_section_html(polygons_path)
    progress.report(0.95, "writing")
    page = _report_page(f"Thaw slump morphometry: {Path(polygons_path).name}", records, figures, change_html)
    try:
        output_html.write_text(page, encoding="utf-8")
    except OSError as err:
        raise UserError(f"Cannot write {output_html.name} ({err.strerror}); choose a folder you can write to.") from None
    progress.report(1.0, "done")
    return output_html


def _check_report_paths(output_html: Path, image_path: "Path | str | None") -> Optional[Path]:
    """The output must be an .html in an existing folder; the optional image must exist."""
    if output_html.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"The report is an HTML page; give an output name ending in .html (not {output_html.name}).")
    if not output_html.parent.exists():
        raise UserError(f"Folder {output_html.parent} does not exist; choose an existing folder for the report.")
    image = Path(image_path) if image_path else None
    if image is not None and not image.exists():
        raise UserError(f"Image not found: {image}; give an existing raster or leave the image out.")
    return image


def _report_records(polygons_path: "Path | str", layer: Optional[str], progress: Progress):
    """The polygons and one field record per polygon, shape fields computed when missing."""
    data = read_polygons(polygons_path, layer)
    if not data.features:
        raise UserError(f"{Path(polygons_path).name} holds no polygons; nothing to report.")
    records = [dict(f.properties) for f in data.features]
    if any(r.get("circularity") is None for r in records) and data.crs_wkt:
        # raw inventories: compute the shape fields here (terrain needs a DEM, see morphometry)
        from .morphometry import morphometry_for_geometries

        computed = morphometry_for_geometries([f.geometry for f in data.features], data.crs_wkt, None, progress.sub(0, 0.3))
        for r, c in zip(records, computed):
            for k, v in c.items():
                if r.get(k) is None:
                    r[k] = v
    return data, records


def _report_figures(records: List[Dict], data, image: Optional[Path], progress: Progress) -> List[tuple]:
    """(caption, base64 PNG) for each histogram, the aspect rose and the map overview."""
    figures = []
    for i, (name, label, log) in enumerate(HISTOGRAMS):
        progress.check_cancelled()
        figures.append((label, _png(histogram_figure(records, name, label, log))))
        progress.report(0.3 + 0.5 * (i + 1) / len(HISTOGRAMS), "figures")
    figures.append(("Aspect rose", _png(aspect_rose_figure(records))))
    figures.append(("Map overview", _png(map_figure([f.geometry for f in data.features], data.crs_wkt, image))))
    return figures


def _report_page(title: str, records: List[Dict], figures: List[tuple], change_html: str) -> str:
    figure_html = "\n".join(
        f'<figure><img alt="{html.escape(label)}" src="data:image/png;base64,{png}"><figcaption>{html.escape(label)}</figcaption></figure>'
        for label, png in figures
    )
    area = _values(records, "area_ha")
    n_small = int((area < 8).sum())
    small_percent = 100 * (area < 8).mean() if area.size else 0
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }}
figcaption {{ font-size: 0.85em; color: #555; text-align: center; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ background: #f3f3f3; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(records)} polygons, total area {area.sum():.2f} ha, {n_small} ({small_percent:.0f} %) smaller than 8 ha.
Generated {dt.datetime.now().isoformat(timespec="seconds")} by Thaw Slump Mapper. Blue dashed lines and shaded bands: the Beiluhe
values of Huang et al. (2020, RSE 237:111534): area 0.3-35.2 ha (mean 3.5), perimeter 270-8910 m (mean 1158),
circularity 0.06-0.63 (mean 0.34), slope 2.4-12.1&deg; (mean 5.5), standardised TPI mean -0.17, solar radiation
8.72-9.04 kWh/m&sup2;/day; slumps there mostly face N and NE.</p>
<h2>Summary</h2>
<table><tr><th>Field</th><th>n</th><th>min</th><th>median</th><th>mean</th><th>max</th><th>std</th><th>Beiluhe (paper)</th></tr>
{''.join(_summary_rows(records))}
</table>
<h2>Facing</h2>
{_facing_table(records)}
<h2>Figures</h2>
{figure_html}
{change_html}
</body></html>
"""
