"""Which raster band feeds which model input band.

In this order: the bands the user gave; GDAL's colour interpretation (red, green, blue...);
the band descriptions (a band named "red", "Red", "nir" ...); then the documented defaults:
3 bands are R,G,B; 4 bands of 16-bit integers are PlanetScope analytic (B,G,R,NIR); any
other 4-band raster (8-bit RGBA, or float such as the project's own Arctic chips, which are
R,G,B plus an outline band) is R,G,B plus an extra band. Anything else needs an explicit
mapping, e.g. ``--bands 3,2,1``. Every choice comes with the reason, for the log and the dock.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from ..core.errors import UserError

PLANETSCOPE_4BAND = ("blue", "green", "red", "nir")
RGB_3BAND = ("red", "green", "blue")
RGB_PLUS_EXTRA = ("red", "green", "blue", "extra")
SIXTEEN_BIT = ("uint16", "int16")
# Words a band description may use for a band (lower case, whole words).
DESCRIPTION_WORDS: Dict[str, tuple] = {
    "red": ("red", "r"),
    "green": ("green", "g"),
    "blue": ("blue", "b"),
    "nir": ("nir", "near infrared", "near-infrared", "nearinfrared", "infrared"),
}


@dataclass(frozen=True)
class BandChoice:
    bands: List[int]  # 1-based raster band per model band
    reason: str  # why, in words, for the log and the dock


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
    descriptions: Sequence[Optional[str]] = (),
    dtype: Optional[str] = None,
) -> List[int]:
    """1-based raster band numbers, one per model band, in the model's order."""
    return choose_bands(model_bands, raster_count, colorinterp, explicit, descriptions, dtype).bands


def choose_bands(
    model_bands: Sequence[str],
    raster_count: int,
    colorinterp: Sequence[str] = (),
    explicit: Optional[Sequence[int]] = None,
    descriptions: Sequence[Optional[str]] = (),
    dtype: Optional[str] = None,
) -> BandChoice:
    """The bands for the model and why they were chosen (see the module docstring for the order)."""
    if explicit:
        return BandChoice(_check_explicit(model_bands, raster_count, explicit), "as given")
    if raster_count < len(model_bands):
        raise UserError(
            f"The raster has {raster_count} band(s) but the model needs {len(model_bands)} ({', '.join(model_bands)}); "
            "use a multi-band image (RGB or PlanetScope analytic)."
        )
    tagged = _first_band_per_name(colorinterp, lambda text, name: text == name)
    if all(b in tagged for b in model_bands):
        return BandChoice([tagged[b] for b in model_bands], "from the raster's colour interpretation")
    described = _first_band_per_name(descriptions, _description_names)
    if all(b in described for b in model_bands):
        return BandChoice([described[b] for b in model_bands], "from the raster's band descriptions")
    if raster_count == 3 and all(b in RGB_3BAND for b in model_bands):
        return BandChoice([RGB_3BAND.index(b) + 1 for b in model_bands], "default for 3 bands: R,G,B")
    if raster_count == 4:
        sixteen_bit = dtype is None or str(dtype) in SIXTEEN_BIT
        order, why = (
            (PLANETSCOPE_4BAND, "default for 4 untagged 16-bit bands: PlanetScope analytic B,G,R,NIR")
            if sixteen_bit
            else (RGB_PLUS_EXTRA, f"default for 4 untagged {dtype} bands: R,G,B plus an extra band (RGBA, or R,G,B,mask chips)")
        )
        if all(b in order for b in model_bands):
            return BandChoice([order.index(b) + 1 for b in model_bands], why + "; pass the bands if that is wrong")
    return _fail(model_bands, raster_count)


def _description_names(text: str, name: str) -> bool:
    """'red', 'Red', 'Band 3 (red)' name red; single letters count only as the whole description."""
    aliases = DESCRIPTION_WORDS[name]
    return text in aliases or aliases[0] in re.split(r"[^a-z]+", text)


def _first_band_per_name(labels: Sequence[Optional[str]], matches) -> Dict[str, int]:
    found: Dict[str, int] = {}
    for index, label in enumerate(labels):
        text = (label or "").strip().lower()
        if not text:
            continue
        for name in DESCRIPTION_WORDS:
            if name not in found and matches(text, name):
                found[name] = index + 1
    return found


def _check_explicit(model_bands: Sequence[str], raster_count: int, explicit: Sequence[int]) -> List[int]:
    if len(explicit) != len(model_bands):
        raise UserError(
            f"The model takes {len(model_bands)} bands ({', '.join(model_bands)}) but {len(explicit)} were given; "
            f"pass one band number per model band."
        )
    for b in explicit:
        if not 1 <= b <= raster_count:
            raise UserError(f"Band {b} does not exist: the raster has {raster_count} band(s).")
    return list(explicit)


def _fail(model_bands: Sequence[str], raster_count: int) -> BandChoice:
    raise UserError(
        f"Cannot tell which of the {raster_count} raster bands are {', '.join(model_bands)}; "
        f"pass the band numbers explicitly, e.g. --bands 1,2,3."
    )


def choose_bands_for_file(model_bands: Sequence[str], path: str) -> BandChoice:
    """The default bands of a raster file, as detection would choose them (for the dock)."""
    import rasterio

    with rasterio.open(path) as src:
        return choose_bands(
            model_bands, src.count, [ci.name for ci in src.colorinterp], None, list(src.descriptions), src.dtypes[0]
        )
