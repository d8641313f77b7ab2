"""`make package`: the zip passes the plugins.qgis.org rules, and the checker catches breakage."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from check_plugin_zip import check_zip  # noqa: E402


def test_package_builds_a_valid_plugin_zip(tmp_path):
    output = tmp_path / "thaw_slump_mapper.zip"
    built = subprocess.run(
        [sys.executable, str(REPO / "tools" / "package_plugin.py"), "--output", str(output)], capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert check_zip(output) == []
    names = zipfile.ZipFile(output).namelist()
    assert {n.split("/")[0] for n in names} == {"thaw_slump_mapper"}
    for required in ("__init__.py", "plugin.py", "metadata.txt", "LICENSE", "icon.png", "processing_provider/provider.py", "engine/detect.py"):
        assert f"thaw_slump_mapper/{required}" in names
    for excluded in ("tests/", "tools/", "mk/", ".venv/", "__pycache__", ".pyc", "Makefile"):
        assert not any(excluded in n for n in names), excluded
    assert output.stat().st_size <= 25 * 1024 * 1024


def _zip(path: Path, files: dict) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


GOOD_METADATA = (REPO / "metadata.txt").read_text()


def test_checker_rejects_what_plugins_qgis_org_rejects(tmp_path):
    base = {
        "thaw_slump_mapper/__init__.py": "",
        "thaw_slump_mapper/metadata.txt": GOOD_METADATA,
        "thaw_slump_mapper/LICENSE": "GPL",
        "thaw_slump_mapper/icon.png": "x",
    }
    assert check_zip(_zip(tmp_path / "good.zip", base)) == []
    no_licence = {k: v for k, v in base.items() if not k.endswith("LICENSE")}
    assert any("LICENSE" in p for p in check_zip(_zip(tmp_path / "a.zip", no_licence)))
    cached = dict(base, **{"thaw_slump_mapper/__pycache__/x.cpython-311.pyc": "x"})
    assert any("__pycache__" in p for p in check_zip(_zip(tmp_path / "b.zip", cached)))
    two_tops = dict(base, **{"other/file.txt": "x"})
    assert any("one top folder" in p for p in check_zip(_zip(tmp_path / "c.zip", two_tops)))
    no_email = dict(base, **{"thaw_slump_mapper/metadata.txt": GOOD_METADATA.replace("email=", "mail=")})
    assert any("email" in p for p in check_zip(_zip(tmp_path / "d.zip", no_email)))
