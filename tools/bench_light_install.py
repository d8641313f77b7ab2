"""One headless detection (`qgis_process run thawslump:detect`, bundled model, demo scene, CPU)
in the light install (no torch) and in the full one, alternated in one run so the two compare
as a ratio. The first full run also exports the ONNX graph once (the light one ships it).

    python tools/bench_light_install.py --light-site out/light-venv/lib/python3.11/site-packages
        [--runs 3] [--output BENCHMARKS.md]

With --output the table replaces the section between the bench-light-install markers.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent.parent
QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
BEGIN, END = "<!-- bench-light-install:begin -->", "<!-- bench-light-install:end -->"


def timed_run(env: dict, scene: Path, output: Path) -> float:
    output.unlink(missing_ok=True)
    started = time.monotonic()
    done = subprocess.run([QGIS_PROCESS, "run", "thawslump:detect", "--", f"INPUT={scene}", f"OUTPUT={output}"],
                          env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"qgis_process failed: {(done.stdout + done.stderr)[-1500:]}")
    return time.monotonic() - started


def environments(work: Path, light_site: Path) -> Dict[str, dict]:
    plugins = work / "plugins"
    plugins.mkdir()
    (plugins / "thaw_slump_mapper").symlink_to(REPO, target_is_directory=True)
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    base.update(QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(plugins), QGIS_CUSTOM_CONFIG_PATH=str(work / "config"),
                OMP_NUM_THREADS="2")
    envs = {"light (onnxruntime, no torch)": dict(base, PYTHONPATH=str(light_site), XDG_CACHE_HOME=str(work / "cache-light")),
            "full (torch installed)": dict(base, PYTHONPATH=sysconfig.get_paths()["purelib"], XDG_CACHE_HOME=str(work / "cache-full"))}
    subprocess.run([QGIS_PROCESS, "plugins", "enable", "thaw_slump_mapper"], env=base, capture_output=True, timeout=120)
    return envs


def table(times: Dict[str, List[float]], runs: int) -> str:
    light, full = (statistics.median(t[1:] or t) for t in times.values())
    rows = [f"| {name} | {t[0]:.1f} s | {', '.join(f'{x:.1f}' for x in t[1:])} s |" for name, t in times.items()]
    return "\n".join([
        f"Run: `tools/bench_light_install.py --runs {runs}` on {os.uname().nodename} ({os.cpu_count()} cores), "
        f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC: `qgis_process run thawslump:detect` on the demo scene "
        "(251 x 251 px at 10 m), bundled model, CPU, whole process (QGIS start, plugin load, detection, writing).",
        "", "| install | first run | later runs |", "| --- | --- | --- |", *rows, "",
        f"Later runs, median: the light install takes {light / full:.2f}x the time of the full one "
        "(importing torch is the difference; the first full run also exports the ONNX graph).",
    ])


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--light-site", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_light_") as folder:
        work = Path(folder)
        scene = work / "scene.tif"
        shutil.copy(REPO / "demo" / "peel_plateau_s2_20210821_rgb.tif", scene)
        envs = environments(work, args.light_site.resolve())
        times: Dict[str, List[float]] = {name: [] for name in envs}
        for _ in range(args.runs):  # alternate, so drift on a shared machine hits both alike
            for name, env in envs.items():
                times[name].append(timed_run(env, scene, work / "out.gpkg"))
    text = table(times, args.runs)
    print(text)
    if args.output:
        section = f"{BEGIN}\n\n{text}\n\n{END}"
        old = args.output.read_text() if args.output.exists() else "# Benchmarks\n"
        if BEGIN in old:
            new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, old, flags=re.S)
        else:
            new = old.rstrip("\n") + "\n\n## Light install: headless detection\n\n" + section + "\n"
        args.output.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
