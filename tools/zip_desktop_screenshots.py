"""Install dist/thaw_slump_mapper.zip into a fresh QGIS profile as "Install from ZIP" does and
take screenshots of the real QGIS desktop under Xvfb, with only the light package set (no torch):

- docs/images/qgis_dock_light.png: the dock after a CPU detection on the demo scene, showing
  the offer to install torch for fine-tuning and CUDA;
- docs/images/qgis_review_tab.png: the Review tab on the first slump to review;
- docs/images/qgis_modeler.png: the shipped Processing model open in the Graphical Modeler.

    python tools/zip_desktop_screenshots.py --light-site out/light-venv/lib/python3.11/site-packages
        [--zip dist/thaw_slump_mapper.zip] [--images docs/images] [--work out/zip-desktop]

Prints the status line of the desktop run (OK ... or ERROR ...); exit status 0 on OK.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parent.parent
PLUGIN = "thaw_slump_mapper"
STARTUP = Path(__file__).resolve().parent / "zip_desktop_startup.py"
FIRST_RUN_OFF = "[qgis]\nshowTips=false\ncheckVersion=false\nallowVersionCheck=false\n[core]\nCrashed=false\n"


def install_fresh_profile(archive: Path, work: Path) -> Path:
    shutil.rmtree(work, ignore_errors=True)
    profile = work / "profiles" / "default"
    done = subprocess.run([sys.executable, str(REPO / "tools" / "install_plugin.py"), str(archive), "--profile-dir", str(profile), "--no-deps"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"install_plugin failed: {done.stdout} {done.stderr}")
    ini = profile / "QGIS" / "QGIS3.ini"
    ini.write_text(ini.read_text() + "\n" + FIRST_RUN_OFF)  # no first-run dialogs under Xvfb
    return profile


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=REPO / "dist" / f"{PLUGIN}.zip")
    parser.add_argument("--light-site", type=Path, required=True, help="site-packages of the light set (no torch)")
    parser.add_argument("--images", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "zip-desktop")
    parser.add_argument("--timeout", type=int, default=300)
    args = parser.parse_args(argv)

    work = args.work.resolve()
    install_fresh_profile(args.zip, work)
    scene = work / "peel_plateau_s2_20210821_rgb.tif"
    shutil.copy(REPO / "demo" / scene.name, scene)
    status = work / "status.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "QGIS_PLUGINPATH", "QT_QPA_PLATFORM")}
    env.update(PYTHONPATH=str(args.light_site.resolve()), TSM_STATUS=str(status), TSM_IMAGES=str(args.images.resolve()),
               TSM_OUTPUT_DIR=str(work / "run"), XDG_CACHE_HOME=str(work / "cache"), OMP_NUM_THREADS="2")
    (work / "run").mkdir(parents=True, exist_ok=True)
    args.images.mkdir(parents=True, exist_ok=True)
    command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", shutil.which("qgis") or "/usr/bin/qgis",
               "--profiles-path", str(work), "--profile", "default", "--nologo", "--noversioncheck",
               "--code", str(STARTUP), str(scene)]
    try:
        subprocess.run(command, env=env, timeout=args.timeout, capture_output=True)
    except subprocess.TimeoutExpired:
        print(f"QGIS did not finish within {args.timeout} s", file=sys.stderr)
    message = status.read_text().strip() if status.exists() else "ERROR QGIS exited without writing a status"
    print(message)
    return 0 if message.startswith("OK") else 1


if __name__ == "__main__":
    sys.exit(main())
