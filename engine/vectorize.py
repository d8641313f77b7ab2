"""Exact pixel-edge polygons from the stitched probability, one strip of rows at a time.

Polygons follow pixel edges (rasterio's shapes), so a polygon's area is exactly its pixel
count times the pixel area and no pixel is lost on any edge; holes are kept. The
probability is read in strips to bound memory; components that touch a strip border are
carried over and unioned with their continuation, so a slump crossing tile or strip
borders comes out whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Set

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes
from scipy import ndimage
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from ..core.union_find import UnionFind

FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)  # same connectivity as shapes()
# One shapes() call on a small box costs about what polygonising this many pixels of a large
# array does (1.1 ms against 0.33 s for a 384 x 30916 strip, measured here): with more wanted
# components than strip pixels / this, one call over the whole strip is cheaper.
PIXELS_PER_SHAPES_CALL = 40_000


@dataclass
class Component:
    """One connected group of pixels above the threshold."""

    geometry: BaseGeometry
    pixel_count: int
    score_sum: float
    score_max: float

    @property
    def score_mean(self) -> float:
        return self.score_sum / self.pixel_count if self.pixel_count else 0.0


@dataclass
class _Piece:
    geometries: List[BaseGeometry]
    pixel_count: int
    score_sum: float
    score_max: float


class StripVectorizer:
    """Feed consecutive strips with ``add_strip``; collect components with ``finish``."""

    def __init__(self, transform: Affine, width: int, keep: Optional[Callable[["Component"], bool]] = None,
                 speck_pixels: float = 0.0) -> None:
        """``keep``: components it refuses are dropped as soon as they are complete. Detection
        passes its minimum-area test: most components are specks below it, and held until the
        end their geometries grew with the raster's area (~90 000 at 20000^2, issue 11).

        ``speck_pixels``: components that lie wholly inside one strip (touching neither its
        first nor its last row) with fewer pixels than this are dropped before they are
        polygonised. Polygonising the specks was most of detection's CPU time once the model
        ran on a GPU. Give it only where ``keep`` refuses every such component anyway
        (detection: a projected CRS, where a component's area is its pixels times the cell area)."""
        self.transform = transform
        self.width = width
        self._keep = keep
        self._speck_pixels = float(speck_pixels)
        self._sets = UnionFind()
        self._pieces: Dict[int, _Piece] = {}
        self._previous_bottom: Optional[np.ndarray] = None  # global ids on the last row so far
        self._next_id = 1
        self._done: List[Component] = []

    def add_strip(self, row0: int, mask: np.ndarray, scores: np.ndarray, score_divisor: Optional[float] = None) -> None:
        """``mask`` (rows, width) bool pixels to keep; ``scores`` their probabilities 0..1
        (or, with ``score_divisor``, values that float32 division by it turns into them).

        Scores are gathered at the kept pixels only: full-width float copies of a strip were
        ~60 MB each at 20000 px wide (issue 11). Sums run over the same pixels in the same
        order as before, so the results are the same to the last bit."""
        labels, count = ndimage.label(mask, structure=FOUR_CONNECTED, output=np.int32)
        global_ids = np.zeros(count + 1, dtype=np.int64)
        if count:
            global_ids[1:] = np.arange(self._next_id, self._next_id + count)
            self._next_id += count
            kept = mask.astype(bool, copy=False)
            picked = labels[kept]
            specks = self._specks(labels, picked, count)
            values = scores[kept] if score_divisor is None else scores[kept].astype(np.float32) / np.float32(score_divisor)
            sums = np.bincount(picked, weights=values.astype(np.float64), minlength=count + 1)
            counts = np.bincount(picked, minlength=count + 1)
            # ndimage's labelled maximum: the same values as np.maximum.at, which was a quarter
            # of the vectoriser's time (its unbuffered loop, float32 into float64)
            maxima = np.asarray(ndimage.maximum(values, picked, np.arange(1, count + 1)), dtype=np.float64)
            strip_transform = self.transform * Affine.translation(0, row0)
            wanted = np.ones(count + 1, dtype=bool) if specks is None else ~specks
            geoms = _component_polygons(labels, kept, count, wanted, strip_transform)
            for label in range(1, count + 1):
                if not wanted[label]:
                    continue
                gid = int(global_ids[label])
                self._sets.add(gid)
                self._pieces[gid] = _Piece(geoms.get(label, []), int(counts[label]), float(sums[label]), float(maxima[label - 1]))
            if self._previous_bottom is not None:
                top = labels[0]
                touching = (top > 0) & (self._previous_bottom > 0)
                for prev_gid, label in set(zip(self._previous_bottom[touching].tolist(), top[touching].tolist())):
                    self._sets.union(int(prev_gid), int(global_ids[label]))
        bottom = global_ids[labels[-1]] if count else np.zeros(self.width, dtype=np.int64)
        self._previous_bottom = bottom
        still_open = {self._sets.find(int(g)) for g in np.unique(bottom[bottom > 0])}
        self._finalise(keep_roots=still_open)

    def _specks(self, labels: np.ndarray, picked: np.ndarray, count: int) -> Optional[np.ndarray]:
        """Per label: a complete component of this strip below ``speck_pixels`` (None: none)."""
        if self._speck_pixels <= 0:
            return None
        sizes = np.bincount(picked, minlength=count + 1)
        specks = sizes < self._speck_pixels
        specks[0] = False
        specks[labels[0]] = False  # may join pieces of the strip above
        specks[labels[-1]] = False  # may go on in the strip below
        return specks if specks.any() else None

    def finish(self) -> List[Component]:
        self._finalise(keep_roots=set())
        self._previous_bottom = None
        done, self._done = self._done, []
        return done

    def _finalise(self, keep_roots: Set[int]) -> None:
        groups = self._sets.groups(list(self._pieces))
        for root, members in groups.items():
            if root in keep_roots:
                continue
            pieces = [self._pieces.pop(m) for m in members]
            for m in members:
                self._sets.remove(m)
            geoms = [g for p in pieces for g in p.geometries]
            geometry = geoms[0] if len(geoms) == 1 else shapely.unary_union(geoms)
            component = Component(
                geometry=geometry,
                pixel_count=sum(p.pixel_count for p in pieces),
                score_sum=sum(p.score_sum for p in pieces),
                score_max=max(p.score_max for p in pieces),
            )
            if self._keep is None or self._keep(component):
                self._done.append(component)


def _component_polygons(labels: np.ndarray, kept: np.ndarray, count: int, wanted: np.ndarray,
                        transform: Affine) -> Dict[int, List[BaseGeometry]]:
    """Pixel-edge polygons of the wanted labels, by label.

    Each component is polygonised inside its own bounding box, in pixel coordinates, then
    placed with ``transform``: polygonising costs time in proportion to the array it is given,
    and the whole strip (30916 px wide at the Beiluhe size) for a few components was half of
    the vectoriser's time. For a north-up transform the coordinates are those GDAL computes for
    the whole strip (x = c + a * col, y = f + e * row, the same two roundings); other transforms,
    and strips with many components (geographic CRSs keep their specks), take the whole-strip call."""
    geoms: Dict[int, List[BaseGeometry]] = {}
    n_wanted = int(np.count_nonzero(wanted[1:]))
    if transform.b != 0 or transform.d != 0 or n_wanted * PIXELS_PER_SHAPES_CALL > labels.size:
        mask = kept if n_wanted == count else kept & wanted[labels]
        for geojson, value in shapes(labels, mask=mask, connectivity=4, transform=transform):
            geoms.setdefault(int(value), []).append(shape(geojson))
        return geoms
    a, c, e, f = transform.a, transform.c, transform.e, transform.f

    def place(xy: np.ndarray) -> np.ndarray:
        return np.column_stack([c + a * xy[:, 0], f + e * xy[:, 1]])

    for label, box in enumerate(ndimage.find_objects(labels, max_label=count), start=1):
        if box is None or not wanted[label]:
            continue
        window = labels[box]
        offset = Affine.translation(box[1].start, box[0].start)
        for geojson, _ in shapes(window, mask=window == label, connectivity=4, transform=offset):
            geoms.setdefault(label, []).append(shapely.transform(shape(geojson), place))
    return geoms


def vectorize_mask(mask: np.ndarray, transform: Affine, scores: Optional[np.ndarray] = None) -> List[BaseGeometry]:
    """Polygons of an in-memory boolean mask (used by training's cross-validation)."""
    vec = StripVectorizer(transform, mask.shape[1])
    vec.add_strip(0, mask.astype(bool), scores if scores is not None else mask.astype(np.float32))
    return [c.geometry for c in vec.finish()]


def vectorize_components(mask: np.ndarray, scores: np.ndarray, transform: Affine, strip_rows: int = 1024) -> List[Component]:
    """Components of an in-memory mask, processed in strips (same code path as detection)."""
    vec = StripVectorizer(transform, mask.shape[1])
    for r0 in range(0, mask.shape[0], strip_rows):
        vec.add_strip(r0, mask[r0:r0 + strip_rows], scores[r0:r0 + strip_rows])
    return vec.finish()
