"""Batch benchmark: one process against a Dask LocalCluster of 2 workers, on the same batch.

The batch: the 16 real ARTS chips (256 x 256 px at 2 m) and four 3 m RGB mosaics of them
(1536 to 2304 px a side, built as for `make bench-engine`). Each configuration runs the real
command line (`python -m thaw_slump_mapper detect-batch`) from a cold start into a fresh
output, so its wall time includes what a user waits for: starting Python (and, for the
cluster, the workers), loading the model, mapping, merging. The two run alternately, twice,
because this shared machine is noisy; ratios are taken within the run.

  .venv/bin/python tools/bench_batch.py --output BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
from bench_engine import build_raster  # noqa: E402  (tools/ is not a package)

OUT = REPO / "out" / "bench_batch"
BEGIN, END = "<!-- bench-batch:begin -->", "<!-- bench-batch:end -->"
MOSAIC_SIDES = (1536, 1792, 2048, 2304)
CONFIGS = (("one process (--serial)", ["--serial"]), ("LocalCluster, 2 workers (--workers 2)", ["--workers", "2"]))


def build_batch(shared: Path) -> tuple:
    """(folder, scene count, pixels): chips and mosaics side by side; the chips get --bands 1,2,3
    through a list, as they carry a mask in band 4."""
    import rasterio
    from affine import Affine

    folder = OUT / "scenes"
    folder.mkdir(parents=True, exist_ok=True)
    rows, pixels = ["path,bands"], 0
    for chip in sorted((shared / "data" / "arctic_rts_chips" / "chips").glob("*.tif")):
        rows.append(f'{chip},"1,2,3"')
        pixels += 256 * 256
    for index, side in enumerate(MOSAIC_SIDES):
        mosaic = folder / f"mosaic_{side}.tif"
        if not mosaic.exists():
            shutil.copy(build_raster(side, shared), mosaic)
            with rasterio.open(mosaic, "r+") as dst:  # side by side, 10 km apart: four scenes, not one place four times
                dst.transform = Affine(3, 0, index * 10_000.0, 0, -3, side * 3.0)
        with rasterio.open(mosaic) as src:
            pixels += src.width * src.height
        rows.append(f'{mosaic},"1,2,3"')
    listing = folder / "scenes.csv"
    listing.write_text("\n".join(rows) + "\n")
    return listing, len(rows) - 1, pixels


def run_once(listing: Path, extra: list, name: str) -> tuple:
    """(wall seconds, CPU seconds of the command and every process under it)."""
    output = OUT / f"{name}.gpkg"
    output.unlink(missing_ok=True)
    shutil.rmtree(output.with_name(output.stem + ".scenes"), ignore_errors=True)
    started, cpu_before = time.perf_counter(), _children_cpu()
    done = subprocess.run([sys.executable, "-m", "thaw_slump_mapper", "detect-batch", str(listing), str(output), *extra],
                          capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
    if done.returncode != 0 or " 0 failed" not in done.stdout:
        raise SystemExit(f"{name} failed:\n{done.stdout}\n{done.stderr[-2000:]}")
    print(f"  {name}: {seconds:.1f} s wall, {cpu:.1f} s CPU; {done.stdout.strip().splitlines()[-1]}", file=sys.stderr)
    return seconds, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("SHARED", REPO.parent / "shared")))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=None, help="BENCHMARKS.md to update")
    args = parser.parse_args()
    listing, n_scenes, pixels = build_batch(args.shared)
    print("warm-up (ONNX export cache, file cache) ...", file=sys.stderr)
    run_once(listing, ["--serial"], "warmup")
    runs = {label: [] for label, _ in CONFIGS}
    loads = []
    for round_no in range(args.rounds):
        for index, (label, extra) in enumerate(CONFIGS):
            loads.append(_load())
            runs[label].append(run_once(listing, extra, f"run{round_no}_{index}"))
    serial_wall = _mean([w for w, _ in runs[CONFIGS[0][0]]])
    lines = [
        BEGIN, "",
        f"Run: `make bench-batch` on {platform.node()} ({os.cpu_count()} CPU cores, no GPU), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; bundled model, onnxruntime. The machine is shared: "
        f"1-minute load average {min(loads):.1f}-{max(loads):.1f} at the starts of the runs (2 would be both cores busy).",
        f"Batch: {n_scenes} scenes, {pixels / 1e6:.1f} Mpx (the 16 real 2 m chips and four 3 m mosaics of them, "
        f"{MOSAIC_SIDES[0]}-{MOSAIC_SIDES[-1]} px a side). Each run is the whole `detect-batch` command from a cold "
        "start (Python, workers, model, mapping, merge) into a new output; the engines alternate.", "",
        "| engine | wall time per run | scenes/min | Mpx/s | throughput vs one process | CPU time per run (all processes) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, _ in CONFIGS:
        wall = _mean([w for w, _ in runs[label]])
        lines.append(f"| {label} | {', '.join(f'{w:.1f} s' for w, _ in runs[label])} | {n_scenes / wall * 60:.1f} | "
                     f"{pixels / 1e6 / wall:.2f} | {serial_wall / wall:.2f} | {', '.join(f'{c:.1f} s' for _, c in runs[label])} |")
    lines += ["", "One process gives each detection both cores (onnxruntime threads); the cluster gives each of its "
              "2 workers one core (THAW_SLUMP_THREADS=1) and runs two scenes at once. CPU time shows what the "
              "cluster costs in extra work (worker start-up, a model load per worker) independently of the load "
              "other users put on the machine.", "", END]
    text = "\n".join(lines)
    print(text)
    if args.output:
        current = args.output.read_text() if args.output.exists() else "# Benchmarks\n"
        if BEGIN in current:
            current = current[: current.index(BEGIN)] + text + current[current.index(END) + len(END):]
        else:
            current = current.rstrip() + "\n\n## Batch detection (one process against a Dask LocalCluster)\n\n" + text + "\n"
        args.output.write_text(current)


def _mean(values: list) -> float:
    return sum(values) / len(values)


if __name__ == "__main__":
    main()
