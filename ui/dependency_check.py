"""Which Python packages the engine needs, which are missing, and where the plugin installs them.

The plugin must load in any QGIS, even one whose Python lacks torch. Start-up only puts the
plugin-managed folder on ``sys.path`` and checks with ``importlib.util.find_spec`` (which
imports nothing); the dock shows what is missing and offers to pip-install it there.
Nothing in this module imports Qt widgets, so start-up stays cheap and cannot fail.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

# Import name -> pip requirement. The pins match requirements.txt (numpy<2 for Debian's GDAL
# bindings, affine<3 for rasterio on Python 3.11.2; see ../shared/GUIDE.md).
# The light set: detection on the CPU runs the bundled model's ONNX graph (model/weights/*.onnx)
# with onnxruntime, so it needs no torch (about 0.35 GB instead of about 6 GB; README).
REQUIRED_PACKAGES = (
    ("onnxruntime", "onnxruntime==1.32.0"),
    ("rasterio", "rasterio==1.4.4"),
    ("fiona", "fiona==1.10.1"),
    # shapely 2.0.7 bundles GEOS 3.11, the version QGIS 3.22 on Debian 12 loads into its own
    # process; newer wheels (GEOS 3.12+) write 4-D WKT/WKB by default and fail there.
    ("shapely", "shapely==2.0.7"),
    ("numpy", "numpy>=1.26,<2"),
    ("affine", "affine>=2.4,<3"),
    ("scipy", "scipy>=1.10"),
)
# The full set, installed only on demand: fine-tuning, CUDA inference, and reading a .pt
# checkpoint that has no ONNX graph beside it.
FULL_PACKAGES = (
    ("torch", "torch"),
    ("segmentation_models_pytorch", "segmentation-models-pytorch==0.6.0"),
)
# Sent with every pip run: onnxruntime and torch would otherwise pull numpy 2 into the managed
# folder even when QGIS's Python already has a numpy 1.x (GUIDE: numpy<2, affine<3).
PINS = ("numpy>=1.26,<2", "affine>=2.4,<3")
FULL_NOTE = (
    "Fine-tuning and CUDA detection need torch and segmentation-models-pytorch (several GB); "
    "CPU detection does not. Install them when you need them."
)

DEPS_FOLDER_NAME = "thaw_slump_mapper_deps"


@dataclass(frozen=True)
class MissingPackage:
    module: str
    requirement: str


def python_tag() -> str:
    """Compiled wheels only fit one Python minor version, so each gets its own folder."""
    return f"py{sys.version_info.major}.{sys.version_info.minor}"


def managed_site_dir(settings_dir: Optional[str] = None) -> Path:
    """The plugin-managed site folder: <QGIS profile>/python/thaw_slump_mapper_deps/pyX.Y.

    ``settings_dir`` is the profile folder (QgsApplication.qgisSettingsDirPath()); the
    environment variable THAW_SLUMP_MAPPER_DEPS overrides it (tests, make install).
    """
    override = os.environ.get("THAW_SLUMP_MAPPER_DEPS")
    if override:
        return Path(override) / python_tag()
    if settings_dir is None:
        settings_dir = _qgis_settings_dir()
    return Path(settings_dir) / "python" / DEPS_FOLDER_NAME / python_tag()


def _qgis_settings_dir() -> str:
    try:
        from qgis.core import QgsApplication

        path = QgsApplication.qgisSettingsDirPath()
        if path:
            return path
    except ImportError:
        pass
    return str(Path.home() / ".local" / "share" / "QGIS" / "QGIS3" / "profiles" / "default")


def activate_managed_site_dir(settings_dir: Optional[str] = None) -> Optional[Path]:
    """Put the managed folder on sys.path (with its .pth files) if it exists; never raises."""
    try:
        folder = managed_site_dir(settings_dir)
        if folder.is_dir() and str(folder) not in sys.path:
            # addsitedir appends; packages the user installed there must win over stale copies
            # elsewhere only when QGIS's own Python lacks them, so appending is the safe order.
            site.addsitedir(str(folder))
            importlib.invalidate_caches()
        return folder
    except Exception:  # start-up must never give QGIS a traceback
        return None


def missing_packages(packages: Sequence[tuple] = REQUIRED_PACKAGES) -> List[MissingPackage]:
    """Packages that cannot be found. find_spec imports nothing, so this is fast at start-up."""
    missing = []
    for module, requirement in packages:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(MissingPackage(module, requirement))
    return missing


def missing_full_packages() -> List[MissingPackage]:
    """What fine-tuning and CUDA need beyond the light set (empty when torch is installed)."""
    return missing_packages(FULL_PACKAGES)


def describe_missing(missing: Sequence[MissingPackage]) -> str:
    if not missing:
        return ""
    names = ", ".join(m.module for m in missing)
    return f"Missing Python packages: {names}. Detection needs them; install them with the button below."


def find_python() -> Optional[str]:
    """The Python interpreter that runs inside QGIS (sys.executable is QGIS itself there)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = []
    if Path(sys.executable).name.lower().startswith("python"):
        candidates.append(sys.executable)
    prefix = Path(sys.exec_prefix)
    candidates += [
        str(prefix / "bin" / f"python{version}"),
        str(prefix / "bin" / "python3"),
        str(prefix / "python.exe"),  # OSGeo4W / standalone Windows installers
        str(prefix / "python3.exe"),
    ]
    candidates += [shutil.which(f"python{version}") or "", shutil.which("python3") or ""]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def pip_install_command(requirements: Sequence[str], target: Path, python: Optional[str] = None) -> List[str]:
    python = python or find_python()
    if python is None:
        raise RuntimeError("No Python interpreter found next to QGIS; install the packages with your system's package manager.")
    return [python, "-m", "pip", "install", "--upgrade", "--target", str(target), "--no-warn-script-location",
            *with_pins(requirements)]


def with_pins(requirements: Sequence[str]) -> List[str]:
    """The requirements plus the pins they lack (matched by package name)."""
    named = {r.split("=")[0].split("<")[0].split(">")[0].strip().lower() for r in requirements}
    return [*requirements, *(pin for pin in PINS if pin.split(">")[0].split("<")[0].lower() not in named)]


def install_packages(
    requirements: Sequence[str],
    target: Path,
    on_output: Optional[Callable[[str], None]] = None,
    is_cancelled: Optional[Callable[[], bool]] = None,
) -> int:
    """Run pip into ``target``, streaming its output lines; returns pip's exit status.

    Safe to call from a QgsTask worker thread (it touches no Qt object).
    """
    target.mkdir(parents=True, exist_ok=True)
    command = pip_install_command(requirements, target)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert process.stdout is not None
    for line in process.stdout:
        if on_output is not None:
            on_output(line.rstrip())
        if is_cancelled is not None and is_cancelled():
            process.terminate()
            break
    return process.wait()
