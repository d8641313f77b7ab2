"""Streaming tiled inference with seamless blending.

The image is processed one row of tiles at a time. An accumulator one tile high holds the
weighted predictions; after each tile row the rows no later tile can touch are divided by
their summed weights and handed to a sink. Memory therefore depends on the raster's width
and the tile size, never on its height, and the input is read window by window.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Protocol, Tuple

import numpy as np

from ..core.progress import Progress
from ..core.scaling import Stretch, apply_scaling, compute_stretch
from .tiling import blend_window, fit_tile_and_overlap, tile_starts


class RowSource(Protocol):
    height: int
    width: int

    def read_rows(self, row0: int, nrows: int) -> Tuple[np.ndarray, np.ndarray]:
        """(C, nrows, width) raw values and (nrows, width) validity; rows past the end are invalid."""


class RowSink(Protocol):
    def write_rows(self, row0: int, probability: np.ndarray, valid: np.ndarray) -> None:
        """Final probabilities (nrows, width) for rows starting at ``row0``."""


def stream_predict(
    source: RowSource,
    sink: RowSink,
    predictor,
    stretch: Stretch,
    scaling: dict,
    tile: int,
    overlap: int,
    batch_size: int = 4,
    progress: Optional[Progress] = None,
) -> None:
    """Predict ``source`` tile by tile and write blended probabilities to ``sink``."""
    progress = progress or Progress()
    height, width = source.height, source.width
    stride = tile - overlap
    row_starts = tile_starts(height, tile, stride)
    col_starts = tile_starts(width, tile, stride)
    padded_width = col_starts[-1] + tile
    window = blend_window(tile, overlap)
    acc = np.zeros((tile, padded_width), dtype=np.float32)
    weight = np.zeros((tile, padded_width), dtype=np.float32)
    total_tiles = len(row_starts) * len(col_starts)
    done_tiles = 0

    def read(row0: int) -> Tuple[np.ndarray, np.ndarray]:
        # Unpadded: only tiles at the right or bottom edge are padded, one at a time, so a
        # tile row is held once (a padded copy of the whole row was ~30 MB at 20000 px wide).
        return source.read_rows(row0, tile)

    # Two helper threads: one reads the next tile row, one writes finished rows, so disk
    # work overlaps the network (onnxruntime and rasterio release the GIL).
    with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=1) as writer:
        pending_read = reader.submit(read, row_starts[0])
        pending_write = None
        for index, row0 in enumerate(row_starts):
            data, valid = pending_read.result()
            if index + 1 < len(row_starts):
                pending_read = reader.submit(read, row_starts[index + 1])
            jobs = [c0 for c0 in col_starts if valid[:, c0:c0 + tile].any()]
            for b in range(0, len(jobs), batch_size):
                progress.check_cancelled()
                cols = jobs[b:b + batch_size]
                probs = predictor(_scaled_batch(data, valid, cols, tile, stretch, scaling))
                for c, p in zip(cols, probs):
                    acc[:, c:c + tile] += p * window
                    weight[:, c:c + tile] += window
                done_tiles += len(cols)
                progress.report(done_tiles / total_tiles, f"tiles {done_tiles}/{total_tiles}")
            done_tiles += len(col_starts) - len(jobs)
            last = index == len(row_starts) - 1
            nflush = min(tile if last else stride, height - row0)
            probability = np.divide(acc[:nflush], weight[:nflush], out=np.zeros((nflush, padded_width), np.float32), where=weight[:nflush] > 0)
            if pending_write is not None:
                pending_write.result()
            pending_write = writer.submit(sink.write_rows, row0, probability[:, :width], valid[:nflush, :width].copy())
            acc[: tile - stride] = acc[stride:]
            acc[tile - stride:] = 0.0
            weight[: tile - stride] = weight[stride:]
            weight[tile - stride:] = 0.0
            progress.report(done_tiles / total_tiles, f"tiles {done_tiles}/{total_tiles}")
        if pending_write is not None:
            pending_write.result()


def _scaled_batch(data: np.ndarray, valid: np.ndarray, cols: list, tile: int, stretch: Stretch, scaling: dict) -> np.ndarray:
    """(len(cols), C, tile, tile) network input for the tiles starting at ``cols`` of a tile row.

    The columns they span are scaled once, not tile by tile: neighbouring tiles overlap, so
    per-tile scaling did each overlap twice (a batch of 32 at 512/128 px: 16384 columns against
    12416). Scaling is per pixel and parts past the raster's edge are 0, as an invalid pixel
    scales to, so the values are the same as per-tile scaling's."""
    start, stop = cols[0], min(cols[-1] + tile, data.shape[2])
    scaled = apply_scaling(data[:, :, start:stop], valid[:, start:stop], stretch, scaling)
    batch = np.zeros((len(cols), data.shape[0], tile, tile), dtype=np.float32)
    for i, c in enumerate(cols):
        part = scaled[:, :, c - start:c - start + tile]
        batch[i, :, :part.shape[1], :part.shape[2]] = part
    return batch


class ArraySource:
    """An in-memory image as a RowSource."""

    def __init__(self, image: np.ndarray, valid: np.ndarray) -> None:
        self.image, self.valid = image, valid
        self.height, self.width = valid.shape

    def read_rows(self, row0: int, nrows: int) -> Tuple[np.ndarray, np.ndarray]:
        return self.image[:, row0:row0 + nrows], self.valid[row0:row0 + nrows]


class ArraySink:
    def __init__(self, height: int, width: int) -> None:
        self.probability = np.zeros((height, width), dtype=np.float32)

    def write_rows(self, row0: int, probability: np.ndarray, valid: np.ndarray) -> None:
        self.probability[row0:row0 + probability.shape[0]] = np.where(valid, probability, 0.0)


def predict_array(
    ckpt,
    image: np.ndarray,
    valid: Optional[np.ndarray] = None,
    device: str = "auto",
    backend: str = "auto",
    predictor=None,
    tile_size: Optional[int] = None,
    overlap: Optional[int] = None,
    batch_size: int = 4,
) -> np.ndarray:
    """Probabilities (H, W) for an in-memory image (C, H, W) already at the checkpoint's GSD.

    Uses the same scaling, tiling and blending as detection, so cross-validation scores
    what users get. Invalid pixels come out as 0.
    """
    from ..core.scaling import valid_pixels
    from .backends import make_predictor

    if valid is None:
        valid = valid_pixels(image)
    height, width = valid.shape
    tile, ov = fit_tile_and_overlap(height, width, int(tile_size or ckpt.tile_size),
                                    int(overlap if overlap is not None else ckpt.overlap))
    predictor = predictor or make_predictor(ckpt, device=device, backend=backend, tile_size=tile)
    stretch = compute_stretch(image, valid, ckpt.scaling)
    sink = ArraySink(height, width)
    stream_predict(ArraySource(image, valid), sink, predictor, stretch, ckpt.scaling, tile, ov, batch_size)
    return sink.probability
