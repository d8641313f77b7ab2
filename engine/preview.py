"""A PNG of the image with the detected polygons drawn on it (for the demo and reports)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling

from ..core.scaling import compute_stretch, valid_pixels
from .vector_io import PolygonFeature

PREVIEW_MAX_SIDE = 1200


def write_preview(
    image_path: Path, features: Sequence[PolygonFeature], bands: Sequence[int], out_png: Path, title: str = "",
    reference: Sequence = (),
) -> Path:
    """The image with the detections (yellow, with scores) and, when given, reference outlines
    (cyan, dashed) in the image's CRS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with rasterio.open(image_path) as src:
        scale = max(1.0, max(src.width, src.height) / PREVIEW_MAX_SIDE)
        shape = (len(bands), int(src.height / scale), int(src.width / scale))
        data = src.read(list(bands), out_shape=shape, resampling=Resampling.average).astype(np.float64)
        bounds = src.bounds
        nodata = src.nodata
    valid = valid_pixels(data, nodata)
    stretch = compute_stretch(data, valid, {"method": "percentile", "low_pct": 1.0, "high_pct": 99.0})
    rgb = np.clip((data - stretch.low[:, None, None]) / (stretch.high - stretch.low)[:, None, None], 0, 1)
    rgb = np.moveaxis(rgb[:3] if rgb.shape[0] >= 3 else np.repeat(rgb[:1], 3, axis=0), 0, -1)
    rgb[~valid] = 1.0
    fig, ax = plt.subplots(figsize=(7, 7 * rgb.shape[0] / rgb.shape[1] + 0.4), dpi=110)
    ax.imshow(rgb, extent=(bounds.left, bounds.right, bounds.bottom, bounds.top))
    for feat in features:
        geoms = getattr(feat.geometry, "geoms", [feat.geometry])
        for poly in geoms:
            for ring in [poly.exterior, *poly.interiors]:
                xs, ys = ring.xy
                ax.plot(xs, ys, color="#ffd400", linewidth=1.6)
        c = feat.geometry.representative_point()
        ax.annotate(f"{feat.properties.get('score_mean', 0):.2f}", (c.x, c.y), color="white", fontsize=8, ha="center")
    _draw_reference(ax, reference)
    ax.set_title(title or f"{len(features)} thaw slump polygon(s)", fontsize=10)
    ax.set_xlabel("easting (m)")
    ax.set_ylabel("northing (m)")
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)


def _draw_reference(ax, reference: Sequence) -> None:
    for geometry in reference:
        for poly in getattr(geometry, "geoms", [geometry]):
            xs, ys = poly.exterior.xy
            ax.plot(xs, ys, color="#00e5ff", linewidth=1.2, linestyle="--")
    if len(reference):
        from matplotlib.lines import Line2D

        ax.legend(
            handles=[Line2D([], [], color="#ffd400", label="detected"), Line2D([], [], color="#00e5ff", linestyle="--", label="reference")],
            loc="lower right", fontsize=7, framealpha=0.7,
        )
