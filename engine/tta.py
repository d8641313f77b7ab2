"""Test-time augmentation: average the probabilities of flipped and rotated copies of each tile.

Slumps have no preferred orientation in the image, so the network's answers for a tile and
for its mirror images should agree; averaging them removes some of the noise that makes
ragged outlines. "flip2" runs each tile twice (identity, left-right mirror), "d4" eight
times (the four rotations, each mirrored). The cost is that many network passes a tile.
"""
from __future__ import annotations

from typing import Callable, List, Tuple

import numpy as np

from ..core.errors import UserError
from .backends import Predictor

TTA_CHOICES = ("none", "flip2", "d4")

Transform = Tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def _transforms(mode: str) -> List[Transform]:
    """(forward on (N, C, H, W), inverse on (N, H, W)) pairs."""
    identity: Transform = (lambda x: x, lambda y: y)
    mirror: Transform = (lambda x: x[..., ::-1], lambda y: y[..., ::-1])
    if mode == "flip2":
        return [identity, mirror]
    out: List[Transform] = []
    for k in range(4):
        out.append((lambda x, k=k: np.rot90(x, k, axes=(-2, -1)), lambda y, k=k: np.rot90(y, -k, axes=(-2, -1))))
        out.append((lambda x, k=k: np.rot90(x, k, axes=(-2, -1))[..., ::-1],
                    lambda y, k=k: np.rot90(y[..., ::-1], -k, axes=(-2, -1))))
    return out


def with_tta(predictor: Predictor, mode: str = "none") -> Predictor:
    """A predictor that averages ``mode``'s transforms; 'none' returns ``predictor`` itself.

    Tiles are square (the engine's tiling), so rotations keep the graph's fixed input shape."""
    mode = (mode or "none").lower()
    if mode not in TTA_CHOICES:
        raise UserError(f"Unknown test-time augmentation {mode!r}; use {', '.join(TTA_CHOICES)}.")
    if mode == "none":
        return predictor
    transforms = _transforms(mode)

    def run(batch: np.ndarray) -> np.ndarray:
        total = None
        for forward, inverse in transforms:
            prob = inverse(predictor(np.ascontiguousarray(forward(batch))))
            total = prob if total is None else total + prob
        return (total / len(transforms)).astype(np.float32)

    return Predictor(run, predictor.backend, f"{predictor.device_name}, TTA {mode} ({len(transforms)} passes)",
                     predictor.preferred_batch)
