"""Pixel scaling shared by inference and training, so both always see the same numbers.

The paper stretched PlanetScope to 8 bit between the 1st and 99th percentile; we do the
same per scene (or per training chip), whatever the input type (8-bit, 16-bit, float),
then normalise with the checkpoint's mean and std.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class Stretch:
    """Per-band values mapped to 0 and 1."""

    low: np.ndarray
    high: np.ndarray


def valid_pixels(data: np.ndarray, nodata: Optional[float] = None, zero_is_nodata: bool = True) -> np.ndarray:
    """Pixels to use: finite in every band, not the nodata value, and (by default) not 0 in
    every band at once, which is how unimaged corners of many scenes and chips are filled."""
    valid = np.all(np.isfinite(data), axis=0)
    if nodata is not None and np.isfinite(nodata):
        valid &= ~np.any(data == nodata, axis=0)
    if zero_is_nodata:
        valid &= ~np.all(data == 0, axis=0)
    return valid


def compute_stretch(data: np.ndarray, valid: np.ndarray, scaling: Dict[str, Any]) -> Stretch:
    """Stretch limits for ``data`` (C, H, W) from its valid pixels, as ``scaling`` asks."""
    bands = data.shape[0]
    if scaling["method"] == "fixed":
        return Stretch(np.asarray(scaling["min"], dtype=np.float64), np.asarray(scaling["max"], dtype=np.float64))
    low = np.zeros(bands)
    high = np.ones(bands)
    if valid.any():
        pixels = data[:, valid].astype(np.float64)
        # one call, one partition of the pixels for both limits (the same values as two calls)
        low, high = np.percentile(pixels, [scaling["low_pct"], scaling["high_pct"]], axis=1)
    # A flat band would divide by zero; give it a unit range so it maps to a constant.
    flat = high - low < 1e-6
    high = np.where(flat, low + 1.0, high)
    return Stretch(low, high)


def apply_scaling(
    data: np.ndarray,
    valid: np.ndarray,
    stretch: Stretch,
    scaling: Dict[str, Any],
) -> np.ndarray:
    """(C, H, W) raw values -> float32 network input; invalid pixels become 0 (the mean)."""
    # clip((x - low) / span, 0, 1) then (. - mean) / std, done in place: this runs once per
    # tile on the hot path, so it avoids temporaries.
    gain = (1.0 / (stretch.high - stretch.low)).astype(np.float32)[:, None, None]
    offset = (-stretch.low / (stretch.high - stretch.low)).astype(np.float32)[:, None, None]
    mean = np.asarray(scaling["mean"], dtype=np.float32)[:, None, None]
    inv_std = (1.0 / np.asarray(scaling["std"], dtype=np.float32))[:, None, None]
    out = data.astype(np.float32, copy=True)
    out *= gain
    out += offset
    np.clip(out, 0.0, 1.0, out=out)
    out -= mean
    out *= inv_std
    if not valid.all():
        out[:, ~valid] = 0.0
    return out


def default_scaling(bands: Sequence[str]) -> Dict[str, Any]:
    """Percentile 1-99 stretch and ImageNet statistics for RGB (0.5/0.25 for other bands)."""
    imagenet = {"red": (0.485, 0.229), "green": (0.456, 0.224), "blue": (0.406, 0.225)}
    mean = [imagenet.get(b, (0.5, 0.25))[0] for b in bands]
    std = [imagenet.get(b, (0.5, 0.25))[1] for b in bands]
    return {"method": "percentile", "low_pct": 1.0, "high_pct": 99.0, "mean": mean, "std": std}
