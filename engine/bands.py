"""Which raster band feeds which model input band.

Defaults: a 3-band raster is RGB; a 4-band raster is PlanetScope analytic (B, G, R, NIR);
bands tagged with colour interpretations (red/green/blue) are used as tagged. Anything
else needs an explicit mapping, e.g. ``--bands 3,2,1``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from .errors import UserError

PLANETSCOPE_4BAND = ("blue", "green", "red", "nir")
RGB_3BAND = ("red", "green", "blue")


def parse_band_list(text: str) -> Optional[List[int]]:
    """'1,2,3' -> [1, 2, 3]; '' -> None (use the default mapping)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        bands = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UserError(f"Bands must be 1-based band numbers separated by commas, like 1,2,3 (got {text!r}).") from None
    return bands


def resolve_bands(
    model_bands: Sequence[str],
    raster_count: int,
    colorinterp: Sequence[str] = (),
    explicit: Optional[Sequence[int]] = None,
) -> List[int]:
    """1-based raster band numbers, one per model band, in the model's order."""
    if explicit:
        if len(explicit) != len(model_bands):
            raise UserError(
                f"The model takes {len(model_bands)} bands ({', '.join(model_bands)}) but {len(explicit)} were given; "
                f"pass one band number per model band."
            )
        for b in explicit:
            if not 1 <= b <= raster_count:
                raise UserError(f"Band {b} does not exist: the raster has {raster_count} band(s).")
        return list(explicit)
    if raster_count < len(model_bands):
        raise UserError(
            f"The raster has {raster_count} band(s) but the model needs {len(model_bands)} ({', '.join(model_bands)}); "
            "use a multi-band image (RGB or PlanetScope analytic)."
        )
    tagged = {name.lower(): i + 1 for i, name in enumerate(colorinterp) if name and name.lower() in ("red", "green", "blue")}
    if all(b in tagged for b in model_bands):
        return [tagged[b] for b in model_bands]
    if raster_count == 4:
        return [PLANETSCOPE_4BAND.index(b) + 1 for b in model_bands if b in PLANETSCOPE_4BAND] if all(
            b in PLANETSCOPE_4BAND for b in model_bands
        ) else _fail(model_bands, raster_count)
    if raster_count == 3 and all(b in RGB_3BAND for b in model_bands):
        return [RGB_3BAND.index(b) + 1 for b in model_bands]
    return _fail(model_bands, raster_count)


def _fail(model_bands: Sequence[str], raster_count: int) -> List[int]:
    raise UserError(
        f"Cannot tell which of the {raster_count} raster bands are {', '.join(model_bands)}; "
        f"pass the band numbers explicitly, e.g. --bands 1,2,3."
    )
