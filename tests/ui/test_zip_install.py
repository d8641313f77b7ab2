"""Install from ZIP, as a user would: `make package` builds the zip, tools/install_plugin.py
unpacks it into a fresh QGIS profile and enables it, and qgis_process (reading that profile,
with only the light package set on its path and no torch) lists the provider, the shipped
model and the help, and runs a CPU detection with the bundled model."""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fiona
import pytest

from ..processing.test_processing_model import model_inputs  # noqa: F401 (fixture used by name)
from .test_light_install import QGIS_PROCESS, light_site_packages  # noqa: F401 (fixture used by name)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from check_plugin_zip import check_zip  # noqa: E402


@pytest.fixture(scope="module")
def installed_profile(light_site_packages, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("fresh_qgis")
    archive = root / "dist" / "thaw_slump_mapper.zip"
    built = subprocess.run([sys.executable, str(REPO / "tools" / "package_plugin.py"), "--output", str(archive)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    assert check_zip(archive) == [] and archive.stat().st_size <= 25 * 1024 * 1024
    profile = root / "config" / "profiles" / "default"
    installed = subprocess.run([sys.executable, str(REPO / "tools" / "install_plugin.py"), str(archive), "--profile-dir", str(profile), "--no-deps"],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "QGIS_PLUGINPATH")}
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(root / "config"), PYTHONPATH=str(light_site_packages),
               XDG_CACHE_HOME=str(root / "cache"), OMP_NUM_THREADS="2")
    return profile, env


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=300)


def test_the_zip_lands_in_the_profile_enabled(installed_profile):
    profile, _ = installed_profile
    plugin = profile / "python" / "plugins" / "thaw_slump_mapper"
    for shipped in ("metadata.txt", "model/weights/thaw_slump_deeplabv3plus.onnx", "processing_provider/models/detect_describe_report.model3"):
        assert (plugin / shipped).is_file(), shipped
    assert not plugin.is_symlink() and not (plugin / "tests").exists()
    ini = configparser.RawConfigParser()
    ini.optionxform = str
    ini.read(profile / "QGIS" / "QGIS3.ini")
    assert ini.get("PythonPlugins", "thaw_slump_mapper") == "true"


def test_the_installed_plugin_lists_runs_and_helps_without_torch(installed_profile, tmp_path):
    profile, env = installed_profile
    checkout = subprocess.run(["/usr/bin/python3", "-c", "import thaw_slump_mapper"], env=env, capture_output=True, cwd=profile)
    assert checkout.returncode != 0, "the checkout is importable: this would not test the installed copy"
    listed = _run(env, "list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "thawslump:detect" in listed.stdout and "thawslump:detect_describe_report" in listed.stdout
    helped = _run(env, "help", "thawslump:detect")
    assert "Documentation: https://github.com/thaw-slump-mapper/thaw_slump_mapper/blob/main/docs/PROCESSING.md#detect" in helped.stdout
    scene = tmp_path / "scene.tif"
    shutil.copy(REPO / "demo" / "peel_plateau_s2_20210821_rgb.tif", scene)
    output = tmp_path / "zip_installed.gpkg"
    ran = _run(env, "run", "thawslump:detect", "--", f"INPUT={scene}", f"OUTPUT={output}")
    text = ran.stdout + ran.stderr
    assert ran.returncode == 0, text[-4000:]
    assert "Device: CPU" in text and "thaw-slump-deeplabv3plus" in text
    with fiona.open(output) as layer:
        assert len(layer) >= 5


def test_the_installed_plugin_runs_the_shipped_model_without_torch(installed_profile, model_inputs, tmp_path):  # noqa: F811
    _, env = installed_profile
    image, dem = model_inputs
    outputs = {"detect:SLUMPS": tmp_path / "s.gpkg", "morphometry:MORPHOMETRY": tmp_path / "m.gpkg", "report:REPORT": tmp_path / "r.html"}
    ran = _run(env, "run", "thawslump:detect_describe_report", "--", f"IMAGE={image}", f"DEM={dem}", "BANDS=1,2,3",
               *(f"{name}={path}" for name, path in outputs.items()))
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-4000:]
    with fiona.open(outputs["morphometry:MORPHOMETRY"]) as layer:
        rows = [dict(f["properties"]) for f in layer]
    assert rows and all(row["slope_mean"] is not None for row in rows)
    assert "<h1>Thaw slump morphometry" in outputs["report:REPORT"].read_text()
