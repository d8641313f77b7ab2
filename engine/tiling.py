"""Overlapping tiles and the weights that blend them without seams.

Each tile's prediction is weighted by a window that is 1 in the middle and falls smoothly
(sin^2) towards the tile edges across the overlap, where a CNN has the least context.
Dividing the weighted sum by the summed weights gives a prediction that is continuous
across tile borders; at the raster's outer edge the division keeps the full value.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np

WEIGHT_FLOOR = 1e-3  # keeps outer raster edges (covered by one tile ramp only) well defined


def tile_starts(length: int, tile: int, stride: int) -> List[int]:
    """Start offsets of tiles covering ``length`` pixels (the last tile may run past the end)."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / stride) + 1
    return [i * stride for i in range(count)]


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """(tile, tile) float32 weights: 1 inside, sin^2 ramps over ``overlap`` at each edge."""
    ramp = np.ones(tile, dtype=np.float64)
    if overlap > 0:
        x = (np.arange(overlap) + 0.5) / overlap
        rise = np.sin(0.5 * np.pi * x) ** 2
        ramp[:overlap] = rise
        ramp[tile - overlap:] = rise[::-1]
    ramp = np.maximum(ramp, WEIGHT_FLOOR)
    return np.outer(ramp, ramp).astype(np.float32)


def tile_batch(tile: int, tiles_at_512: int) -> int:
    """Tiles a network call for ``tile`` px tiles: no more pixels than ``tiles_at_512`` tiles
    of 512 px, and never more tiles (progress and cancel are checked between calls)."""
    return max(1, min(tiles_at_512, round(tiles_at_512 * (512 / tile) ** 2)))


def fit_tile_size(height: int, width: int, tile: int, multiple: int = 32) -> int:
    """A smaller tile for images smaller than the model's tile (saves work on small chips)."""
    needed = max(height, width)
    if needed >= tile:
        return tile
    return max(multiple, int(math.ceil(needed / multiple)) * multiple)


def fit_tile_and_overlap(height: int, width: int, tile: int, overlap: int) -> Tuple[int, int]:
    """(tile, overlap) for an image: the tile shrinks for a small image (fit_tile_size), and
    then the overlap to at most a quarter of it, so the blend still has an inside of weight 1."""
    fitted = fit_tile_size(height, width, tile)
    return fitted, (overlap if fitted == tile else min(overlap, fitted // 4))
