"""The light install: in a Python WITHOUT torch (only the dock's light package set on top of
Debian's QGIS Python), the plugin loads in qgis_process.bin and thawslump:detect runs the
bundled model's ONNX graph on the CPU.

The venv is built once from the local wheel store with exactly REQUIRED_PACKAGES and kept in
out/light-venv (rebuilt when that list changes), so later runs take seconds.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fiona
import pytest

from thaw_slump_mapper.core.checkpoint import bundled_checkpoint_path, load_checkpoint
from thaw_slump_mapper.ui.dependency_check import FULL_PACKAGES, REQUIRED_PACKAGES

from ..conftest import missing

REPO = Path(__file__).resolve().parents[2]
LIGHT_VENV = REPO / "out" / "light-venv"
QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
SYSTEM_PYTHON = "/usr/bin/python3"  # the Python Debian's QGIS embeds


def light_requirements() -> list:
    return [requirement for _, requirement in REQUIRED_PACKAGES]


@pytest.fixture(scope="module")
def light_site_packages() -> Path:
    if not Path(QGIS_PROCESS).is_file():
        missing("qgis_process.bin is not installed (Debian package qgis)")
    stamp = hashlib.sha256("\n".join(light_requirements()).encode()).hexdigest()[:16]
    site = LIGHT_VENV / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    if (LIGHT_VENV / "stamp").is_file() and (LIGHT_VENV / "stamp").read_text() == stamp:
        return site
    shutil.rmtree(LIGHT_VENV, ignore_errors=True)
    made = subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(LIGHT_VENV)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    pip = subprocess.run([str(LIGHT_VENV / "bin" / "python"), "-m", "pip", "install", "-q", *light_requirements()],
                         capture_output=True, text=True, timeout=600)
    if pip.returncode != 0:
        missing(f"the light packages could not be installed from the wheel store ({pip.stderr.strip()[-300:]})")
    (LIGHT_VENV / "stamp").write_text(stamp)
    return site


@pytest.fixture(scope="module")
def light_env(light_site_packages, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("light_qgis")
    plugins = root / "plugins"
    plugins.mkdir()
    (plugins / "thaw_slump_mapper").symlink_to(REPO, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(plugins), QGIS_CUSTOM_CONFIG_PATH=str(root / "config"),
        PYTHONPATH=str(light_site_packages), XDG_CACHE_HOME=str(root / "cache"), OMP_NUM_THREADS="2",
    )
    enabled = subprocess.run([QGIS_PROCESS, "plugins", "enable", "thaw_slump_mapper"], env=env, capture_output=True, text=True, timeout=120)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return env


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=300)


def test_the_light_python_has_no_torch(light_env):
    for module, _ in FULL_PACKAGES:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", f"import {module}"], env=light_env, capture_output=True, text=True)
        assert probe.returncode != 0, f"{module} is importable: this would not test the light install"
    for module, _ in REQUIRED_PACKAGES:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", f"import {module}"], env=light_env, capture_output=True, text=True)
        assert probe.returncode == 0, probe.stderr[-500:]


def test_detect_runs_the_bundled_model_without_torch(light_env, tmp_path):
    scene = tmp_path / "scene.tif"
    shutil.copy(REPO / "demo" / "peel_plateau_s2_20210821_rgb.tif", scene)
    assert "thawslump:detect" in _run(light_env, "list").stdout
    output = tmp_path / "light.gpkg"
    ran = _run(light_env, "run", "thawslump:detect", "--", f"INPUT={scene}", f"OUTPUT={output}", "DEVICE=0")
    text = ran.stdout + ran.stderr
    assert ran.returncode == 0, text[-4000:]
    assert "Device: CPU" in text and "thaw-slump-deeplabv3plus" in text
    with fiona.open(output) as layer:
        scores = [f["properties"]["score_mean"] for f in layer]
    # A polygon is where the probability passes the checkpoint's threshold, so its mean does too
    # (v3.1.0: 11 slumps with the full install, threshold 0.3).
    threshold = load_checkpoint(bundled_checkpoint_path()).threshold
    assert len(scores) >= 5 and all(threshold <= s <= 1 for s in scores), (threshold, scores)
    assert not (Path(light_env["XDG_CACHE_HOME"]) / "thaw_slump_mapper" / "onnx").exists(), "nothing was exported"


def test_a_checkpoint_without_graph_asks_for_torch_in_one_line(light_env, tiny_checkpoint, tmp_path):
    scene = tmp_path / "scene.tif"
    shutil.copy(REPO / "demo" / "peel_plateau_s2_20210821_rgb.tif", scene)
    ran = _run(light_env, "run", "thawslump:detect", "--", f"INPUT={scene}", f"CHECKPOINT={tiny_checkpoint}",
               f"OUTPUT={tmp_path / 'no.gpkg'}")
    text = ran.stdout + ran.stderr
    assert ran.returncode != 0
    assert "needs torch to be read" in text and "FULL=1" in text
    assert "Traceback" not in text
    assert not (tmp_path / "no.gpkg").exists()
