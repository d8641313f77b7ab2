"""The zip installed into a fresh profile, in the real QGIS desktop under Xvfb, with no torch:
the dock runs a CPU detection, shows the offer to install torch for fine-tuning, the Review tab
shows the first slump, and the shipped model opens in the Graphical Modeler (three screenshots)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from qgis.PyQt.QtGui import QImage

from ..conftest import missing
from .test_light_install import light_site_packages  # noqa: F401 (fixture used by name)

REPO = Path(__file__).resolve().parents[2]


def test_zip_install_desktop_screenshots(light_site_packages, tmp_path):  # noqa: F811
    if shutil.which("xvfb-run") is None or shutil.which("qgis") is None:
        missing("xvfb-run or the QGIS desktop is not installed (Debian packages xvfb, qgis)")
    archive = tmp_path / "thaw_slump_mapper.zip"
    built = subprocess.run([sys.executable, str(REPO / "tools" / "package_plugin.py"), "--output", str(archive)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    images = tmp_path / "images"
    ran = subprocess.run([sys.executable, str(REPO / "tools" / "zip_desktop_screenshots.py"), "--zip", str(archive),
                          "--light-site", str(light_site_packages), "--images", str(images), "--work", str(tmp_path / "desktop")],
                         capture_output=True, text=True, timeout=400)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "slumps on CPU" in ran.stdout
    for name in ("qgis_dock_light.png", "qgis_review_tab.png", "qgis_modeler.png"):
        picture = QImage(str(images / name))
        assert not picture.isNull() and picture.width() >= 1000, name
        # Not a blank grab: a real screen has many colours.
        colours = {picture.pixel(x, y) for x in range(0, picture.width(), 37) for y in range(0, picture.height(), 37)}
        assert len(colours) > 20, name
