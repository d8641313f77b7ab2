"""Helpers for the output-safety tests: folder snapshots (md5 of every file), the command line
in a real subprocess, and qgis_process.bin with the plugin linked in."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import fiona
from shapely.geometry import box

from thaw_slump_mapper.engine.vector_io import PolygonFeature, write_polygons

REPO = Path(__file__).resolve().parent.parent
QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
TIMEOUT_S = 300


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> Dict[str, str]:
    """relative name -> md5 of every file under ``folder`` (folders end with '/')."""
    out: Dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        out[name + "/" if path.is_dir() else name] = "" if path.is_dir() else md5(path)
    return out


def assert_unchanged(folder: Path, before: Dict[str, str], new: Iterable[str] = ()) -> None:
    """Every file that existed is byte-identical, and the folder lists exactly ``before`` + ``new``."""
    after = snapshot(folder)
    changed = [name for name, digest in before.items() if after.get(name) != digest]
    assert not changed, f"pre-existing files changed or gone: {changed}"
    assert sorted(after) == sorted(set(before) | set(new)), f"folder now lists {sorted(after)}; expected {sorted(set(before) | set(new))}"


def corrected_geopackage(path: Path, crs_wkt: str, x0: float = 0.0, y0: float = 0.0) -> Path:
    """A GeoPackage as a user leaves it: a detection layer with review edits and a hand-drawn layer."""
    schema = {"id": "int", "review": "str:12", "note": "str:40"}
    edited = [PolygonFeature(box(x0, y0, x0 + 50, y0 + 50), {"id": 1, "review": "edited", "note": "fixed by hand"})]
    write_polygons(path, "thaw_slumps", edited, crs_wkt, schema)
    write_polygons(path, "corrected_by_hand", edited, crs_wkt, schema)
    return path


def layers(path: Path) -> List[str]:
    return sorted(fiona.listlayers(str(path)))


def cli(*args: str, env: Optional[dict] = None, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """`python -m thaw_slump_mapper ...` in its own process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "thaw_slump_mapper", *args], capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ, **(env or {})), cwd="/",
    )


def qgis_process_env(root: Path) -> dict:
    plugins = root / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "thaw_slump_mapper"
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        QGIS_PLUGINPATH=str(plugins),
        QGIS_CUSTOM_CONFIG_PATH=str(root / "config"),
        PYTHONPATH=os.pathsep.join(p for p in (sysconfig.get_paths()["purelib"], os.environ.get("PYTHONPATH", "")) if p),
        OMP_NUM_THREADS="2",
    )
    enabled = subprocess.run([QGIS_PROCESS, "plugins", "enable", "thaw_slump_mapper"], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return env


def qgis_process(env: dict, algorithm: str, *params: str) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, "run", algorithm, "--", *params], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def interrupt_when(command: List[str], marker: str, env: Optional[dict] = None, signal_number: int = 2,
                   timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """Start ``command``, send it a signal as soon as ``marker`` appears in its output, and wait."""
    import signal as _signal
    import threading

    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd="/")
    seen = bytearray()
    sent = threading.Event()

    def pump() -> None:
        while True:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                return
            seen.extend(chunk)
            if not sent.is_set() and marker.encode() in seen:
                sent.set()
                proc.send_signal(_signal.Signals(signal_number))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() - started < timeout:
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    reader.join(5)
    text = seen.decode(errors="replace")
    assert sent.is_set(), f"'{marker}' never appeared: {text[-2000:]}"
    return subprocess.CompletedProcess(command, proc.returncode, text, "")
