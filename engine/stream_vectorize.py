"""Vectorising while the model runs: a probability sink that also feeds the vectoriser.

Without resampling, the polygons come from exactly the rows the probability GeoTIFF stores
(whole percent, 255 = no data). Doing that in the inference writer thread, row block by
row block as blending finishes them, overlaps vectorising with the network and saves the
second pass that read the whole probability raster back (issue 11). The mask and scores are
computed from the stored percent values exactly as that pass did, and StripVectorizer joins
components across row blocks, so the polygons cover the same pixels.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np
from affine import Affine

from .raster_source import PROBABILITY_NODATA, ProbabilityWriter, probability_percent
from .vectorize import Component, StripVectorizer


class VectorizingSink:
    """A RowSink that writes probability rows and vectorises them in the same call."""

    def __init__(self, writer: ProbabilityWriter, transform: Affine, width: int, threshold: float,
                 keep: Optional[Callable[[Component], bool]] = None, speck_pixels: float = 0.0) -> None:
        self.writer = writer
        self.vectorizer = StripVectorizer(transform, width, keep, speck_pixels)
        self.cut = int(round(threshold * 100))

    def write_rows(self, row0: int, probability: np.ndarray, valid: np.ndarray) -> None:
        values = probability_percent(probability, valid)  # computed once, written and vectorised
        self.writer.write_percent(row0, values)
        stored_valid = values != PROBABILITY_NODATA
        self.vectorizer.add_strip(row0, stored_valid & (values >= self.cut), values, score_divisor=100.0)

    def components(self) -> List[Component]:
        return self.vectorizer.finish()
