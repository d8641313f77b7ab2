"""Where detection's time goes, stage by stage and thread by thread.

Wraps the stages of `run_detection` with timers (no change to what they compute) and runs
one detection. On a GPU the network is a small part of the run, and this shows which CPU
stage bounds it; `--fake-model` replaces the network by a cheap function of the input to see
the pipeline alone on any machine.

  .venv/bin/python tools/profile_detect.py out/bench/mosaic_20000x3000.tif [--device cuda] [--batch 32]
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict

import numpy as np

SECONDS: Dict[str, float] = defaultdict(float)
LOCK = threading.Lock()


def timed(name: str, fn: Callable) -> Callable:
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with LOCK:
                SECONDS[name] += time.perf_counter() - started
    return wrapper


def instrument(fake_model: bool) -> None:
    import thaw_slump_mapper.engine.detect as detect
    import thaw_slump_mapper.engine.inference as inference
    from thaw_slump_mapper.engine import raster_source, stream_vectorize, vectorize
    from thaw_slump_mapper.engine.backends import Predictor

    if fake_model:
        def fake(batch: np.ndarray) -> np.ndarray:
            return (1.0 / (1.0 + np.exp(-4.0 * (batch[:, 0] - batch[:, 2])))).astype(np.float32)
        detect.make_predictor = lambda *a, **k: Predictor(fake, "fake", "fake model")
    original_make = detect.make_predictor

    def make_timed_predictor(*args, **kwargs):
        predictor = original_make(*args, **kwargs)
        predictor._run = timed("main: network (predictor call)", predictor._run)
        return predictor
    detect.make_predictor = timed("setup: make_predictor (model load)", make_timed_predictor)
    detect.load_for_detection = timed("setup: load checkpoint", detect.load_for_detection)
    rs = raster_source.RasterRowSource
    rs.read_rows = timed("reader thread: read_rows", rs.read_rows)
    rs.sample_for_stretch = timed("setup: sample_for_stretch", rs.sample_for_stretch)
    sink = stream_vectorize.VectorizingSink
    sink.write_rows = timed("writer thread: write_rows (all)", sink.write_rows)
    writer = raster_source.ProbabilityWriter
    writer.write_percent = timed("writer thread:   probability GeoTIFF", writer.write_percent)
    strips = vectorize.StripVectorizer
    strips.add_strip = timed("writer thread:   vectorise strip", strips.add_strip)
    inference.apply_scaling = timed("main: scaling tiles", inference.apply_scaling)
    detect._features = timed("end: features (area, perimeter)", detect._features)
    detect.StagedLayer.write = timed("end: write GeoPackage", detect.StagedLayer.write)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raster", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--fake-model", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    instrument(args.fake_model)
    import thaw_slump_mapper.engine.detect as detect

    with tempfile.TemporaryDirectory(prefix="profile_detect_") as work:
        options = {"batch_size": args.batch} if args.batch else {}
        started = time.perf_counter()
        result = detect.run_detection(detect.DetectionRequest(args.raster, Path(work) / "slumps.gpkg", device=args.device,
                                                              **options))
        total = time.perf_counter() - started
    report = {"raster": str(args.raster), "device": result.device_name, "backend": result.backend,
              "total_s": round(total, 1), "mpx_per_s": round(result.pixels / 1e6 / total, 2), "slumps": result.n_slumps,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "stages_s": {k: round(v, 1) for k, v in sorted(SECONDS.items())}}
    main_known = SECONDS["main: scaling tiles"] + SECONDS["main: network (predictor call)"]
    report["stages_s"]["main: rest (stack, blend, queue waits)"] = round(
        total - main_known - sum(v for k, v in SECONDS.items() if k.startswith(("setup", "end"))), 1)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
