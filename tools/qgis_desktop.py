"""Start the real QGIS desktop with this checkout as the enabled plugin and the demo scene.

    python tools/qgis_desktop.py                     # make qgis: interactive desktop
    python tools/qgis_desktop.py --screenshot docs/images/qgis_dock.png   # make screenshot

The checkout is linked as `thaw_slump_mapper` into a plugins folder under out/qgis-desktop
(the checkout folder may have any name) and QGIS runs with its own profile there, so the
user's real profile is not touched. QGIS embeds Debian's Python, which does not see the
venv, so the venv's site-packages go on PYTHONPATH.

With --screenshot, QGIS runs under Xvfb; tools/qgis_screenshot_startup.py opens the dock,
runs a detection on the demo scene through the dock's background task, and saves a picture
of the whole main window.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "out" / "qgis-desktop"
PLUGIN = "thaw_slump_mapper"


def prepare_profile(work: Path) -> dict:
    plugins = work / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / PLUGIN
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(REPO, target_is_directory=True)
    ini = work / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    # Enable the plugin and skip the first-run dialogs that would block an unattended start.
    ini.write_text(
        "[PythonPlugins]\n"
        f"{PLUGIN}=true\n\n"
        "[qgis]\n"
        "showTips=false\ncheckVersion=false\nallowVersionCheck=false\n"
        "[core]\nCrashed=false\n"
    )
    env = dict(os.environ)
    env["QGIS_PLUGINPATH"] = str(plugins)
    venv_site = sysconfig.get_paths()["purelib"]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("TSM_EXTRA_PYTHONPATH", ""), venv_site, env.get("PYTHONPATH", "")) if p)
    env.pop("QT_QPA_PLATFORM", None)  # the Makefile exports offscreen for tests; the desktop needs a display
    return env


def qgis_command(work: Path, layers: List[Path], code: Path | None) -> List[str]:
    # QGIS appends "profiles/<name>" to --profiles-path.
    command = [shutil.which("qgis") or "/usr/bin/qgis", "--profiles-path", str(work), "--profile", "default",
               "--nologo", "--noversioncheck"]
    if code is not None:
        command += ["--code", str(code)]
    return command + [str(p) for p in layers]


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", type=Path, help="save a screenshot here and quit (runs under Xvfb)")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint for the screenshot's detection (default: bundled)")
    parser.add_argument("--timeout", type=int, default=420, help="seconds before an unattended run is stopped")
    args = parser.parse_args(argv)

    layers = sorted((REPO / "demo").glob("*.tif"))
    if not layers:
        print("demo/*.tif is missing: run `make demo-scene` (tools/make_demo_scene.py) first", file=sys.stderr)
        return 2
    env = prepare_profile(WORK)
    if args.screenshot is None:
        return subprocess.call(qgis_command(WORK, layers, None), env=env)

    screenshot = args.screenshot.resolve()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    status = WORK / "screenshot_status.txt"
    status.unlink(missing_ok=True)
    run_dir = WORK / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    env.update(
        TSM_SCREENSHOT=str(screenshot), TSM_STATUS=str(status), TSM_OUTPUT_DIR=str(run_dir),
        TSM_CHECKPOINT=str(args.checkpoint.resolve()) if args.checkpoint else "",
    )
    command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24"] + qgis_command(
        WORK, layers, Path(__file__).resolve().parent / "qgis_screenshot_startup.py"
    )
    try:
        subprocess.run(command, env=env, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f"QGIS did not finish within {args.timeout} s", file=sys.stderr)
    message = status.read_text().strip() if status.exists() else "QGIS exited without writing a status"
    print(message)
    return 0 if message.startswith("OK") and screenshot.is_file() else 1


if __name__ == "__main__":
    sys.exit(main())
