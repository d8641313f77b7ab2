"""Install the packaged plugin into a QGIS profile, with its Python dependencies.

    python tools/install_plugin.py dist/thaw_slump_mapper.zip [--profile-dir DIR] [--no-deps] [--full]

The zip is unpacked into <profile>/python/plugins/thaw_slump_mapper (an earlier copy is
replaced). Packages that QGIS's own Python cannot import are pip-installed into
<profile>/python/thaw_slump_mapper_deps/pyX.Y, the folder the plugin puts on sys.path at
start-up (ui/dependency_check.py), and the plugin is marked enabled in the profile.
By default only the light set goes in (CPU detection with onnxruntime: no torch); --full adds
torch and segmentation-models-pytorch for fine-tuning and CUDA. The size of the managed folder
and the time pip took are printed (README "Install into your QGIS").
"""
from __future__ import annotations

import argparse
import configparser
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parent.parent
PLUGIN = "thaw_slump_mapper"
DEFAULT_PROFILE = Path.home() / ".local" / "share" / "QGIS" / "QGIS3" / "profiles" / "default"
QGIS_PYTHON = "/usr/bin/python3"  # the interpreter Debian's QGIS embeds


def load_dependency_check():
    # The venv links the checkout as `thaw_slump_mapper`; ui/dependency_check imports no Qt.
    from thaw_slump_mapper.ui import dependency_check

    return dependency_check


def unpack(zip_path: Path, plugins_dir: Path) -> Path:
    target = plugins_dir / PLUGIN
    plugins_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=plugins_dir) as staging:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(staging)
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
        (Path(staging) / PLUGIN).replace(target)
    return target


def missing_for_qgis_python(deps_dir: Path, packages) -> List[str]:
    """Requirements whose module QGIS's Python cannot import, with the managed folder on its path."""
    missing = []
    env = dict(os.environ, PYTHONPATH=str(deps_dir))
    for module, requirement in packages:
        probe = subprocess.run([QGIS_PYTHON, "-c", f"import {module}"], env=env, capture_output=True)
        if probe.returncode != 0:
            missing.append(requirement)
    return missing


def enable_plugin(profile: Path) -> None:
    ini = profile / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    config = configparser.RawConfigParser()
    config.optionxform = str
    if ini.exists():
        config.read(ini)
    if not config.has_section("PythonPlugins"):
        config.add_section("PythonPlugins")
    config.set("PythonPlugins", PLUGIN, "true")
    with ini.open("w") as handle:
        config.write(handle, space_around_delimiters=False)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zip", type=Path)
    parser.add_argument("--profile-dir", type=Path, default=DEFAULT_PROFILE)
    parser.add_argument("--no-deps", action="store_true", help="do not pip-install missing packages")
    parser.add_argument("--full", action="store_true", help="also torch and segmentation-models-pytorch (training, CUDA)")
    args = parser.parse_args(argv)

    target = unpack(args.zip, args.profile_dir / "python" / "plugins")
    print(f"plugin installed in {target}")
    enable_plugin(args.profile_dir)
    deps = load_dependency_check()
    version = subprocess.run(
        [QGIS_PYTHON, "-c", "import sys; print(f'py{sys.version_info[0]}.{sys.version_info[1]}')"], capture_output=True, text=True
    )
    deps_dir = args.profile_dir / "python" / deps.DEPS_FOLDER_NAME / version.stdout.strip()
    packages = deps.REQUIRED_PACKAGES + (deps.FULL_PACKAGES if args.full else ())
    missing = missing_for_qgis_python(deps_dir, packages)
    if not missing:
        print("QGIS's Python already has every package the plugin needs.")
        return 0
    if args.no_deps:
        print(f"missing for QGIS's Python (not installed, --no-deps): {' '.join(missing)}")
        return 0
    print(f"installing {' '.join(missing)} into {deps_dir}")
    # Same Python minor version as QGIS's, so the compiled wheels fit.
    command = [sys.executable, "-m", "pip", "install", "--target", str(deps_dir), "--no-warn-script-location", *deps.with_pins(missing)]
    started = time.monotonic()
    status = subprocess.run(command).returncode
    print(f"pip took {time.monotonic() - started:.0f} s; {deps_dir} holds {folder_mb(deps_dir):.0f} MB"
          + ("" if args.full else " (light set: CPU detection; FULL=1 adds torch for training and CUDA)"))
    return status


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


if __name__ == "__main__":
    sys.exit(main())
