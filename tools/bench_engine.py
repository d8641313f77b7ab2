"""Detection benchmark: end-to-end throughput and peak memory versus model-only speed.

Builds large 3 m RGB rasters by tiling the real ARTS chips (../shared/data): 10000^2, 20000^2
and the paper's Beiluhe mosaic size 30916 x 18713; then, in one run on one machine:
  * end to end (read, tiles, model, blend, write, vectorise) through `run_detection`,
    each size in its own process so its peak memory (max RSS) is its own;
  * model-only throughput of the same network and tile size on tiles sampled from that raster
    (spread over it, scaled as detection scales them): a plain onnxruntime session with default
    options on the same fp32 graph (the yardstick), the engine's own fp32 session, and the
    engine's int8 graph, expressed per raster pixel (the sample's time scaled to the raster's
    tile count) so it compares directly with end to end.
Model-only runs happen right before and right after each size's end-to-end run and are
averaged, because these machines are noisy. End to end runs detection's defaults (precision
auto, as `make detect`), after the graphs are cached in a separate process as `make detect`
does, so the run is torch-free like `make detect`. Results go to BENCHMARKS.md (between markers).

  .venv/bin/python tools/bench_engine.py --sizes 10000 20000 30916x18713 --output BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "out" / "bench"
BEGIN, END = "<!-- bench-engine:begin -->", "<!-- bench-engine:end -->"


BEILUHE = "30916x18713"  # the paper's Beiluhe mosaic, 3 m
BACKEND_LABELS = {"plain": "plain onnxruntime fp32", "onnxruntime": "engine fp32", "int8": "engine int8", "cuda": "CUDA"}


def parse_size(text: str) -> tuple:
    """"10000" (square) or "30916x18713" (width x height)."""
    w, _, h = str(text).partition("x")
    return int(w), int(h or w)


def build_raster(size: str, shared: Path) -> Path:
    """A width x height, 3 m, 8-bit RGB mosaic of the real chips, written strip by strip."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    width, height = parse_size(size)
    path = OUT / (f"mosaic_{width}.tif" if width == height else f"mosaic_{width}x{height}.tif")
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    chips = []
    for chip in sorted((shared / "data" / "arctic_rts_chips" / "chips").glob("*.tif")):
        with rasterio.open(chip) as src:
            rgb = np.nan_to_num(src.read([1, 2, 3]), nan=0, neginf=0, posinf=0)
            chips.append(np.clip(rgb, 1, 255).astype(np.uint8))
    chip = chips[0].shape[1]
    profile = {"driver": "GTiff", "dtype": "uint8", "count": 3, "width": width, "height": height, "crs": "EPSG:3413",
               "transform": Affine(3, 0, 0, 0, -3, height * 3.0), "tiled": True, "blockxsize": 512, "blockysize": 512,
               "compress": "deflate", "zlevel": 1, "BIGTIFF": "YES", "photometric": "RGB"}
    tmp = path.with_suffix(".partial.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, height, chip):
            rows = min(chip, height - r0)
            strip = np.zeros((3, rows, width), np.uint8)
            for i, c0 in enumerate(range(0, width, chip)):
                pick = chips[(i * 7 + r0 // chip * 5) % len(chips)]
                pick = np.rot90(pick, k=(i + r0 // chip) % 4, axes=(1, 2))
                strip[:, :, c0:c0 + chip] = pick[:, :rows, : min(chip, width - c0)]
            dst.write(strip, window=Window(0, r0, width, rows))
    tmp.rename(path)
    return path


def peak_resident_mb() -> float:
    """This process's own peak resident memory (VmHWM). Not ru_maxrss: Linux carries that
    across fork and exec, so a worker started by a parent that had built the mosaic reported
    the parent's 1824 MB (sessions 3 and 5) instead of its own peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def end_to_end(raster: Path, checkpoint: Path, precision: str = "auto", batch_size: int | None = None) -> dict:
    from thaw_slump_mapper.engine.detect import DetectionRequest, run_detection

    out = OUT / f"e2e_{raster.stem}_{precision}"
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():
        f.unlink()
    started = time.perf_counter()
    options = {"batch_size": batch_size} if batch_size else {}
    result = run_detection(DetectionRequest(raster, out / "slumps.gpkg", checkpoint_path=checkpoint, overwrite=True,
                                            precision=precision, **options))
    seconds = time.perf_counter() - started
    peak_mb = peak_resident_mb()
    report = {"seconds": seconds, "pixels": result.pixels, "peak_mb": peak_mb, "slumps": result.n_slumps, "backend": result.backend,
              "device": result.device_name, "torch_imported": "torch" in sys.modules}
    if result.device_name.startswith("CUDA"):
        import torch

        report["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return report


def sample_tiles(raster: Path, ckpt, count: int) -> np.ndarray:
    """(count, C, tile, tile) float32: tiles spread over the raster on a regular grid, scaled
    with a stretch computed from them (speed does not depend on the exact stretch)."""
    import rasterio
    from rasterio.windows import Window

    from thaw_slump_mapper.core.scaling import apply_scaling, compute_stretch, valid_pixels

    tile = ckpt.tile_size
    with rasterio.open(raster) as src:
        side = int(np.ceil(np.sqrt(count)))
        rows = np.linspace(0, src.height - tile, side).astype(int)
        cols = np.linspace(0, src.width - tile, side).astype(int)
        raw = [src.read(list(range(1, len(ckpt.bands) + 1)), window=Window(int(c), int(r), tile, tile))
               for r in rows for c in cols][:count]
    stack = np.concatenate(raw, axis=2)
    valid = valid_pixels(stack)
    stretch = compute_stretch(stack, valid, ckpt.scaling)
    return np.stack([apply_scaling(t, valid_pixels(t), stretch, ckpt.scaling) for t in raw]).astype(np.float32)


def prepare(checkpoint: Path) -> dict:
    """Cache the graphs and the checkpoint's description, as `make detect` does first."""
    from thaw_slump_mapper.engine.model_cache import prepare as prepare_graphs

    prepare_graphs(checkpoint)
    return {"prepared": str(checkpoint)}


def model_only(checkpoint: Path, backend: str, sample_tiles_count: int, batch: int = 4, raster: Path | None = None) -> float:
    """Seconds per tile of the bare network on tiles of ``raster`` (random input without one)."""
    from thaw_slump_mapper.core.checkpoint import load_checkpoint
    from thaw_slump_mapper.engine.backends import make_predictor

    ckpt = load_checkpoint(checkpoint)
    device = "cpu" if backend != "cuda" else "cuda"
    if backend == "plain":  # a plain onnxruntime session, default options, on the same exported graph
        import onnxruntime as ort

        from thaw_slump_mapper.engine.backends import onnx_model_path

        session = ort.InferenceSession(str(onnx_model_path(ckpt, ckpt.tile_size)), providers=["CPUExecutionProvider"])

        def predictor(x):  # noqa: F811
            return session.run(None, {"image": x})[0]
    elif backend == "int8":
        predictor = make_predictor(ckpt, "cpu", "onnxruntime", precision="int8")
    else:
        predictor = make_predictor(ckpt, device, "torch" if backend in ("torch", "cuda") else backend)
    if backend == "torch":  # eager: no channels_last, as a plain smp user would run it
        import torch

        from thaw_slump_mapper.core.checkpoint import build_network

        net = build_network(ckpt)

        def predictor(x):  # noqa: F811
            with torch.inference_mode():
                return torch.sigmoid(net(torch.from_numpy(x)))[:, 0].numpy()

    runs = max(1, sample_tiles_count // batch)
    if raster is not None:
        tiles = sample_tiles(raster, ckpt, runs * batch)
    else:
        tiles = np.random.default_rng(0).normal(size=(runs * batch, len(ckpt.bands), ckpt.tile_size, ckpt.tile_size)).astype(np.float32)
    predictor(tiles[:batch])  # warm-up
    started = time.perf_counter()
    for b in range(runs):
        predictor(tiles[b * batch:(b + 1) * batch])
    return (time.perf_counter() - started) / (runs * batch)


def tiles_for(width: int, height: int, tile: int, overlap: int) -> int:
    from thaw_slump_mapper.engine.tiling import tile_starts

    return len(tile_starts(width, tile, tile - overlap)) * len(tile_starts(height, tile, tile - overlap))


def worker(args: argparse.Namespace) -> None:
    if args.worker.startswith("e2e"):  # e2e[:precision[:batch]]
        _, precision, batch = (args.worker.split(":") + ["", ""])[:3]
        print(json.dumps(end_to_end(Path(args.raster), Path(args.checkpoint), precision or "auto", int(batch) if batch else None)))
    elif args.worker == "prepare":
        print(json.dumps(prepare(Path(args.checkpoint))))
    else:
        raster = Path(args.raster) if args.raster else None
        backend, _, batch = args.worker.partition(":")  # backend[:batch]
        print(json.dumps({"seconds_per_tile": model_only(Path(args.checkpoint), backend, args.sample, int(batch or 4), raster=raster)}))


def run_worker(kind: str, checkpoint: Path, raster: Path | None = None, sample: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--checkpoint", str(checkpoint), "--sample", str(sample)]
    if raster is not None:
        cmd += ["--raster", str(raster)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["10000", "20000", BEILUHE], help="N (square) or WxH")
    parser.add_argument("--precisions", nargs="+", default=["auto"], help="end-to-end runs per size (auto: detect's default)")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--sample", type=int, default=48, help="tiles timed for model-only throughput")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("SHARED", REPO.parent / "shared")))
    parser.add_argument("--worker", default=None)
    parser.add_argument("--raster", default=None)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    from thaw_slump_mapper.core.checkpoint import bundled_checkpoint_path, load_checkpoint
    from thaw_slump_mapper.core.devices import cuda_name

    checkpoint = args.checkpoint or bundled_checkpoint_path()
    ckpt = load_checkpoint(checkpoint)
    gpu = cuda_name()
    # "plain": onnxruntime's default session on the same graph, the yardstick
    backends = ["cuda"] if gpu else ["plain", "onnxruntime", "int8"]
    rows = []
    run_worker("prepare", checkpoint)
    for size in args.sizes:
        raster = build_raster(size, args.shared)
        for precision in args.precisions:
            before = {b: run_worker(b, checkpoint, raster, sample=args.sample) for b in backends}
            print(f"end to end on {size} ({precision}) ...", file=sys.stderr)
            e2e = run_worker(f"e2e:{precision}", checkpoint, raster)
            after = {b: run_worker(b, checkpoint, raster, sample=args.sample) for b in backends}
            e2e["per_tile"] = {b: (before[b]["seconds_per_tile"] + after[b]["seconds_per_tile"]) / 2 for b in backends}
            rows.append((size, e2e))
            print(f"  {e2e['seconds']:.0f} s, peak {e2e['peak_mb']:.0f} MB", file=sys.stderr)

    lines = [BEGIN, "", f"Run: `make bench` on {platform.node()} ({os.cpu_count()} CPU cores"
             + (f", GPU {gpu}" if gpu else ", no GPU") + f"), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
             f"Model: {ckpt.summary()}; tile {ckpt.tile_size} px, overlap {ckpt.overlap} px, batch 4.", "",
             "| raster | end to end (precision) | km2/min at 3 m | peak memory | model only: "
             + " | model only: ".join(BACKEND_LABELS.get(b, b) for b in backends)
             + " | end to end / " + BACKEND_LABELS.get(backends[0], backends[0]) + " |", "|" + " --- |" * (5 + len(backends))]
    for size, r in rows:
        width, height = parse_size(size)
        mpx = r["pixels"] / 1e6
        e2e = mpx / r["seconds"]
        tiles = tiles_for(width, height, ckpt.tile_size, ckpt.overlap)
        model = {b: mpx / (r["per_tile"][b] * tiles) for b in backends}
        lines.append(
            f"| {width} x {height} ({mpx:.0f} Mpx) | {e2e:.2f} Mpx/s ({r['seconds']:.0f} s, {r['backend']}) | {e2e * 9 * 60 / 1e0:.0f} "
            f"| {r['peak_mb']:.0f} MB | " + " | ".join(f"{model[b]:.2f} Mpx/s" for b in backends)
            + f" | {e2e / model[backends[0]]:.2f} |"
        )
    for size, r in rows:
        if size == BEILUHE:
            lines += ["", f"Beiluhe size ({size}): {r['seconds'] / 60:.1f} min end to end (target: 5 min or less)."]
    lines += ["", "Model-only throughput is per raster pixel: seconds per tile (timed on "
              f"{args.sample} tiles of that raster right before and right after its end-to-end run, averaged) times the "
              "raster's tile count.", "", END]
    text = "\n".join(lines)
    print(text)
    if args.output:
        current = args.output.read_text() if args.output.exists() else "# Benchmarks\n\n"
        if BEGIN in current:
            current = current[: current.index(BEGIN)] + text + current[current.index(END) + len(END):]
        else:
            current = current.rstrip() + "\n\n## Detection engine\n\n" + text + "\n"
        args.output.write_text(current)


if __name__ == "__main__":
    main()
