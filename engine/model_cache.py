"""CPU detection without importing torch once a checkpoint's graphs are cached (issue 11).

`import torch` alone raises resident memory by about 480 MB (measured: 74 -> 551 MB), a third
of the 1.5 GB detection may use on any raster, although onnxruntime runs the network. Torch
is needed only to read the .pt file and to export and quantise its graph. So the first
detection with a checkpoint remembers its description and weight fingerprint beside the
cached graphs, keyed by the checkpoint FILE's sha256; later detections on a CPU read that
description and run the cached graph without torch. Anything not cached (another tile size,
another precision, a changed file) falls back to the full load, which fills the cache.

`python -m thaw_slump_mapper.engine.model_cache [CHECKPOINT]` fills the cache in its own
process (`make detect` runs it first), so even the first `make detect` runs torch-free.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from ..core.checkpoint import checkpoint_or_bundled, torch_available
from ..core.devices import check_device, cuda_impossible
from .backends import cache_dir, onnx_graph_file
from .onnx_model import load_detection_checkpoint
from .quantize import int8_graph_file, resolve_precision

if TYPE_CHECKING:
    from ..core.checkpoint import Checkpoint

_READ_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 of the checkpoint file's bytes (16 hex digits): ~30 ms for the bundled 17 MB."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_READ_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def description_file(checkpoint_path: Path) -> Path:
    return cache_dir() / "onnx" / f"checkpoint-{file_digest(checkpoint_path)}.json"


def remember(ckpt: "Checkpoint") -> None:
    """Store the description and fingerprint of a checkpoint loaded with torch (once)."""
    if ckpt.path is None or not ckpt.state_dict:
        return
    target = description_file(Path(ckpt.path))
    if target.is_file():
        return
    partial = target.with_name(target.name + f".{os.getpid()}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({"description": ckpt.describe_dict(), "fingerprint": ckpt.fingerprint()}))
        partial.replace(target)  # readers never see half a file
    except OSError:  # an unwritable cache only costs the next run its torch-free start
        partial.unlink(missing_ok=True)


def remembered(checkpoint_path: Path) -> Optional["Checkpoint"]:
    """The checkpoint's description without its weights, or None when not cached (or unreadable)."""
    from ..core.checkpoint import checkpoint_from_description

    try:
        stored = json.loads(description_file(checkpoint_path).read_text())
        return checkpoint_from_description(stored["description"], checkpoint_path.name, checkpoint_path,
                                           known_fingerprint=str(stored["fingerprint"]))
    except Exception:  # a missing, stale or damaged entry: the full load decides (and rewrites it)
        return None


def graphs_cached(ckpt: "Checkpoint", tile: int, precision: str) -> bool:
    """Whether the graph detection would run for this tile size and precision is on disk."""
    graph = int8_graph_file(ckpt, tile) if resolve_precision(precision, ckpt.trained) == "int8" else onnx_graph_file(ckpt, tile)
    return graph.is_file()


def torch_free_possible(device: str, backend: str) -> bool:
    """onnxruntime on the CPU for sure: the only case that needs no torch."""
    device, backend = check_device(device), (backend or "auto").lower()
    return backend in ("auto", "onnxruntime") and (device == "cpu" or (device == "auto" and cuda_impossible()))


def load_for_detection(checkpoint_path: Path, device: str, backend: str, precision: str,
                       tile_of: Callable[["Checkpoint"], int]) -> "Checkpoint":
    """The checkpoint detection runs: its cached description when the graph for
    ``tile_of(ckpt)`` is cached and nothing needs torch, else the full load (which remembers)."""
    checkpoint_path = Path(checkpoint_path)
    if torch_available() and torch_free_possible(device, backend):
        ckpt = remembered(checkpoint_path)
        if ckpt is not None and graphs_cached(ckpt, _tile_or_zero(tile_of, ckpt), precision):
            return ckpt
    ckpt = load_detection_checkpoint(checkpoint_path)
    remember(ckpt)
    return ckpt


def _tile_or_zero(tile_of: Callable[["Checkpoint"], int], ckpt: "Checkpoint") -> int:
    """The tile size, or 0 (never cached) when the grid is refused: the full load then reports
    problems in the usual order (checkpoint, bands, extent)."""
    from ..core.errors import UserError

    try:
        return tile_of(ckpt)
    except UserError:
        return 0


def prepare(checkpoint_path: Optional[Path] = None, precision: str = "auto") -> Path:
    """Export (and quantise) the graph for the checkpoint's own tile size and remember it."""
    from .backends import make_predictor

    path = checkpoint_or_bundled(checkpoint_path)
    ckpt = load_detection_checkpoint(path)
    remember(ckpt)
    make_predictor(ckpt, "cpu", "onnxruntime", precision=precision)  # exports/quantises when missing
    return path


def main(argv: list) -> int:
    from ..core.errors import UserError

    if not torch_available():
        return 0  # a light install runs the shipped graph; nothing to prepare
    try:
        checkpoint = Path(argv[0]) if argv and argv[0] else None
        precision = argv[1] if len(argv) > 1 and argv[1] else "auto"
        known = remembered(checkpoint_or_bundled(checkpoint))
        if known is None or not graphs_cached(known, known.tile_size, precision):
            prepare(checkpoint, precision)
    except UserError:
        return 0  # detect itself reports it, in its usual order (the input is checked first)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
