"""Batch detection (engine/batch) on real chips: inputs, the overlap rule, resume, cancel,
the CLI/make and Processing front ends, and a real Dask cluster (a scheduler and two worker
processes on loopback) with one worker killed in the middle of the run."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import fiona
import pytest
import rasterio
from rasterio.windows import Window
from shapely.geometry import MultiPolygon, box, shape

import thaw_slump_mapper
from thaw_slump_mapper.core.errors import Cancelled, UserError
from thaw_slump_mapper.core.progress import Progress
from thaw_slump_mapper.engine.batch import BatchRequest, run_batch, work_folder
from thaw_slump_mapper.engine.batch.dedupe import Detection, deduplicate
from thaw_slump_mapper.engine.batch.scenes import acquisition_date, collect_scenes
from thaw_slump_mapper.engine.batch.worker import scene_file
from thaw_slump_mapper.engine.detect import DetectionRequest, run_detection

from ..conftest import REPO, missing

RGB = (1, 2, 3)  # the chips are RGB plus a mask band
OVERLAP_CHIP = "18191cf6-cdbc-5e6e-b28c-90222c259b3d.tif"  # the bundled model (v3.0.0) finds one slump at columns 74-158
OTHER_CHIPS = 5
# The folder that holds the package under its import name (not resolved: the checkout may be
# linked in under that name); worker processes get it on PYTHONPATH.
PACKAGE_PARENT = Path(thaw_slump_mapper.__file__).absolute().parent.parent


# --- real scenes: chips, two overlapping crops of one chip, two corrupt files -------------------

def _crop(chip: Path, out: Path, col0: int, width: int) -> Path:
    with rasterio.open(chip) as src:
        window = Window(col0, 0, width, src.height)
        profile = dict(src.profile, width=width, height=src.height, transform=src.window_transform(window))
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(src.read(window=window))
    return out


@pytest.fixture(scope="module")
def scene_folder(shared_data, tmp_path_factory) -> Path:
    chips = sorted((shared_data / "arctic_rts_chips" / "chips").glob("*.tif"))
    folder = tmp_path_factory.mktemp("scenes")
    for chip in [c for c in chips if c.name != OVERLAP_CHIP][:OTHER_CHIPS]:
        shutil.copy(chip, folder / chip.name)
    overlap_chip = shared_data / "arctic_rts_chips" / "chips" / OVERLAP_CHIP
    # Columns 0-191 and 64-255 of one chip: the slump (about columns 74-158) lies in both.
    _crop(overlap_chip, folder / "overlapA_20190715.tif", 0, 192)
    _crop(overlap_chip, folder / "overlapB_20200802.tif", 64, 192)
    (folder / "corrupt_random.tif").write_bytes(os.urandom(4000))
    data = chips[1].read_bytes()
    (folder / "corrupt_truncated.tif").write_bytes(data[: len(data) // 3])
    return folder


GOOD_SCENES = OTHER_CHIPS + 2
ALL_SCENES = GOOD_SCENES + 2


def _inventory(path: Path) -> Dict[str, List[tuple]]:
    """source -> its features as (normalised geometry, attributes except the creation time)."""
    by_source: Dict[str, List[tuple]] = {}
    with fiona.open(str(path), layer="thaw_slumps") as src:
        for f in src:
            props = {k: v for k, v in dict(f.properties).items() if k != "created"}
            by_source.setdefault(props["source"], []).append((_norm(shape(f.geometry)), sorted(props.items())))
    return {k: sorted(v) for k, v in by_source.items()}


def _scenes(path: Path) -> Dict[str, dict]:
    with fiona.open(str(path), layer="scenes") as src:
        rows = [dict(f.properties, geometry=shape(f.geometry) if f.geometry else None) for f in src]
    assert len({r["scene"] for r in rows}) == len(rows), "a scene is listed twice"
    return {r["scene"]: r for r in rows}


def _norm(geometry) -> str:
    """Comparable form: files hold MultiPolygons, the engine returns Polygons."""
    if geometry.geom_type == "Polygon":
        geometry = MultiPolygon([geometry])
    return geometry.normalize().wkb_hex


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _scene_files(output: Path) -> Dict[str, int]:
    """Done scenes' result files (not the partial ones of scenes being mapped) -> modification time."""
    return {p.name: p.stat().st_mtime_ns for p in work_folder(output).glob("*.gpkg") if ".partial-" not in p.name}


# --- inputs and the overlap rule ----------------------------------------------------------------

def test_scene_lists_folder_glob_csv_and_dates(scene_folder, tmp_path):
    folder = collect_scenes(str(scene_folder), RGB)
    assert len(folder) == ALL_SCENES and len({s.key for s in folder}) == ALL_SCENES
    assert [s.path for s in collect_scenes(str(scene_folder / "overlap*.tif"))] == sorted(scene_folder.glob("overlap*.tif"))
    listing = tmp_path / "scenes.csv"
    listing.write_text(f'path,bands\n{scene_folder / "overlapA_20190715.tif"},"3,2,1"\n{scene_folder / "overlapB_20200802.tif"},\n')
    a, b = collect_scenes(str(listing), RGB)
    assert (a.bands, b.bands) == ((3, 2, 1), RGB) and a.key != collect_scenes(str(scene_folder / "overlapA_20190715.tif"), RGB)[0].key
    text = tmp_path / "scenes.txt"
    text.write_text(f"# two scenes\n{scene_folder / 'overlapA_20190715.tif'} 1,2,3\noverlapB_20200802.tif\n")
    (tmp_path / "overlapB_20200802.tif").write_bytes(b"")
    a, b = collect_scenes(str(text))
    assert a.bands == RGB and b.bands is None and b.path == tmp_path / "overlapB_20200802.tif"
    assert acquisition_date({}, "Peel_S2_20210821.tif") == "2021-08-21"
    assert acquisition_date({"ACQUISITION_DATE": "2019:07:15 10:00:00"}, "x_20210821.tif") == "2019-07-15"
    assert acquisition_date({"TIFFTAG_DATETIME": "2024:01:01 00:00:00"}, "0a7e324b-142d.tif") == ""
    with pytest.raises(UserError, match="path"):
        (tmp_path / "bad.csv").write_text("file_name\nx.tif\n")
        collect_scenes(str(tmp_path / "bad.csv"))
    with pytest.raises(UserError, match="No scenes"):
        collect_scenes(str(tmp_path / "*.jp2"))


def _detection(geometry, scene: str, score: float, cut: bool = False, ident: int = 1) -> Detection:
    props = {"id": ident, "score_mean": score, "score_max": score, "area_m2": geometry.area}
    return Detection(geometry, props, scene, f"{scene}.tif", cut)


def test_overlap_rule_union_when_outlines_agree_else_the_better_one():
    agree = deduplicate([_detection(box(0, 0, 10, 10), "a", 0.6), _detection(box(2, 0, 12, 10), "b", 0.8)])
    assert len(agree) == 1 and agree[0].unioned and agree[0].geometry.equals(box(0, 0, 12, 10))
    assert agree[0].best.scene == "b" and agree[0].sources == ["b.tif", "a.tif"]
    # IoU 1/3: the same slump (the overlap covers half the smaller one) but outlines that disagree.
    differ = deduplicate([_detection(box(0, 0, 10, 10), "a", 0.9), _detection(box(5, 0, 15, 10), "b", 0.7)])
    assert len(differ) == 1 and not differ[0].unioned and differ[0].geometry.equals(box(0, 0, 10, 10))
    # A better score loses to a complete outline when its own is cut by its scene's edge.
    cut = deduplicate([_detection(box(0, 0, 4, 10), "a", 0.95, cut=True), _detection(box(0, 0, 10, 10), "b", 0.6)])
    assert len(cut) == 1 and cut[0].best.scene == "b" and cut[0].geometry.equals(box(0, 0, 10, 10))
    # Neighbours that only touch, or overlap by a sliver, stay two slumps.
    apart = deduplicate([_detection(box(0, 0, 10, 10), "a", 0.9), _detection(box(10, 0, 20, 10), "b", 0.9),
                         _detection(box(19.5, 0, 30, 10), "c", 0.9)])
    assert len(apart) == 3


def test_overlapping_real_crops_give_one_slump_and_match_single_detection(scene_folder, tmp_path):
    """Two crops of one real chip overlap where the slump is; a third crop cuts it at its edge."""
    folder = tmp_path / "crops"
    folder.mkdir()
    for name in ("overlapA_20190715.tif", "overlapB_20200802.tif"):
        shutil.copy(scene_folder / name, folder / name)
    # Columns 20-171 of crop B are columns 84-235 of the chip: the slump is cut at column 84.
    # (v2.0.0 was cut at column 104; what v3.0.0 sees right of 104 falls apart into two pieces,
    # and right of 120 was too little for v2 on an AVX2-only CPU.)
    _crop(scene_folder / "overlapB_20200802.tif", folder / "overlapC_cut.tif", 20, 152)
    result = run_batch(BatchRequest(str(folder), tmp_path / "inv.gpkg", bands=RGB, serial=True))
    assert (result.n_done, result.n_failed) == (3, 0)
    per_scene = {}
    for scene in collect_scenes(str(folder), RGB):
        with fiona.open(str(scene_file(work_folder(tmp_path / "inv.gpkg"), scene.key)), layer="thaw_slumps") as src:
            per_scene[scene.name] = [shape(f.geometry) for f in src]
    assert all(len(geoms) == 1 for geoms in per_scene.values()), per_scene  # each crop sees the slump once
    # The batch's per-scene polygons are exactly what a single detection of that scene gives.
    single = run_detection(DetectionRequest(folder / "overlapA_20190715.tif", None, bands=list(RGB)))
    assert [_norm(f.geometry) for f in single.features] == [_norm(g) for g in per_scene["overlapA_20190715.tif"]]
    with fiona.open(str(tmp_path / "inv.gpkg"), layer="thaw_slumps") as src:
        features = list(src)
    assert len(features) == 1 and result.n_merged == 2
    slump = features[0].properties
    assert slump["n_scenes"] == 3 and set(slump["sources"].split("; ")) == set(per_scene)
    assert slump["source"] != "overlapC_cut.tif"  # the outline cut by its scene's edge is never the kept one
    kept = shape(features[0].geometry)
    a, b = per_scene["overlapA_20190715.tif"][0], per_scene["overlapB_20200802.tif"][0]
    if a.intersection(b).area / a.union(b).area > 0.5:  # the two complete outlines agree: their union
        assert kept.buffer(1e-6).contains(a.union(b).buffer(-1e-6))
    assert slump["acquired"] in ("2019-07-15", "2020-08-02")
    assert abs(slump["area_m2"] - kept.area) < 1.0


# --- resume, ownership, cancel (one process) ----------------------------------------------------

def test_a_scene_listed_twice_is_mapped_once_and_listed_as_skipped(scene_folder, tmp_path):
    listing = tmp_path / "scenes.txt"
    listing.write_text(f"{scene_folder / 'overlapA_20190715.tif'} 1,2,3\n{scene_folder / 'overlapA_20190715.tif'} 1,2,3\n")
    result = run_batch(BatchRequest(str(listing), tmp_path / "inv.gpkg", serial=True))
    assert (result.n_scenes, result.n_done, result.n_skipped, result.n_slumps) == (2, 1, 1, 1)
    rows = _scenes(tmp_path / "inv.gpkg")
    assert sorted(r["status"] for r in rows.values()) == ["done", "skipped"]
    assert [r["acquired"] for r in rows.values() if r["status"] == "done"] == ["2019-07-15"]


def test_resume_redoes_only_missing_scenes_and_guards_outputs(scene_folder, tmp_path):
    request = BatchRequest(str(scene_folder / "overlap*.tif"), tmp_path / "inv.gpkg", bands=RGB, serial=True)
    first = run_batch(request)
    assert (first.n_done, first.n_done_before, first.inventory_written) == (2, 0, True)
    files = _scene_files(request.output_path)
    missing_scene = sorted(files)[0]
    (work_folder(request.output_path) / missing_scene).unlink()
    (work_folder(request.output_path) / "stale.partial-0123.gpkg").write_bytes(b"half a file")  # a killed worker's leftover
    second = run_batch(request)
    assert (second.n_done, second.n_done_before, second.inventory_written) == (2, 1, True)
    after = _scene_files(request.output_path)
    assert {k: v for k, v in after.items() if k != missing_scene} == {k: v for k, v in files.items() if k != missing_scene}
    assert not list(work_folder(request.output_path).glob("*.partial-*"))
    third = run_batch(request)
    assert (third.n_done_before, third.inventory_written) == (2, False)
    with pytest.raises(UserError, match="other"):
        run_batch(BatchRequest(request.inputs, request.output_path, bands=RGB, serial=True, threshold=0.3))
    with fiona.open(str(request.output_path), layer="thaw_slumps") as src:
        drawn = next(iter(src))
    with fiona.open(str(request.output_path), "a", layer="thaw_slumps") as dst:  # a user adds a slump by hand
        dst.write({"geometry": drawn.geometry, "properties": dict(drawn.properties, id=99, review="added")})
    with pytest.raises(UserError, match="changed since"):
        run_batch(request)
    foreign = tmp_path / "mine.gpkg"
    shutil.copy(request.output_path, foreign)
    with pytest.raises(UserError, match="not written by this batch"):
        run_batch(BatchRequest(request.inputs, foreign, bands=RGB, serial=True))
    assert not work_folder(foreign).exists()


def test_cancel_stops_cleanly_and_the_next_run_resumes(scene_folder, tmp_path):
    output = tmp_path / "inv.gpkg"
    seen = []

    def report(fraction: float, message: str) -> None:
        seen.append(message)

    def cancel_after_first_scene() -> bool:
        return any(m.startswith("1/") for m in seen)

    with pytest.raises(Cancelled):
        run_batch(BatchRequest(str(scene_folder / "overlap*.tif"), output, bands=RGB, serial=True),
                  Progress(report, cancel_after_first_scene))
    assert not output.exists() and len(_scene_files(output)) == 1
    assert not list(work_folder(output).glob("*.partial-*"))
    resumed = run_batch(BatchRequest(str(scene_folder / "overlap*.tif"), output, bands=RGB, serial=True))
    assert (resumed.n_done, resumed.n_done_before) == (2, 1)


# --- a real Dask cluster: scheduler + 2 worker processes on loopback ----------------------------

@dataclass
class Cluster:
    address: str
    watcher: object          # a distributed.Client of the test's own, to look at the scheduler
    workers: list            # Popen of each `dask worker` process

    def address_of(self, index: int) -> str:
        info = self.watcher.scheduler_info()["workers"]
        return next(addr for addr, w in info.items() if w.get("name") == f"worker{index}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    try:
        from distributed import Client
    except ImportError:
        missing("dask.distributed is not installed (pip install -r requirements.txt)")
    logs = tmp_path_factory.mktemp("dask")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")])),
               THAW_SLUMP_THREADS="1")  # two workers on a 2-core machine
    address = f"tcp://127.0.0.1:{_free_port()}"
    processes: List[subprocess.Popen] = []
    watcher = None

    def start(name: str, *args: str) -> subprocess.Popen:
        with open(logs / f"{name}.log", "w") as log:
            process = subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, cwd=logs, stdout=log, stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard")
        workers = [start(f"worker{i}", "worker", address, "--nthreads", "1", "--no-dashboard", "--no-nanny", "--host", "127.0.0.1",
                         "--name", f"worker{i}")
                   for i in range(2)]
        watcher = Client(address, timeout="60s")
        watcher.wait_for_workers(2, timeout=120)
        yield Cluster(address, watcher, workers)
    finally:  # always: no dask process outlives the tests
        if watcher is not None:
            try:
                watcher.shutdown()  # scheduler and workers exit at once
            except Exception:  # noqa: BLE001 - the processes are ended below anyway
                watcher.close()
        for process in reversed(processes):  # workers first, so none waits for its scheduler
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def provider(qgis_processing):
    from ..plugin_helpers import register_provider

    return register_provider()  # held for the module: QGIS must not lose the provider


def test_processing_algorithm_on_the_cluster(dask_cluster, scene_folder, tmp_path, provider):
    import processing
    from qgis.core import QgsVectorLayer

    listing = tmp_path / "scenes.csv"
    listing.write_text(f'path,bands\n{scene_folder / "overlapA_20190715.tif"},"1,2,3"\n{scene_folder / "corrupt_random.tif"},\n')
    result = processing.run("thawslump:detect_batch", {"INPUTS": str(listing), "OUTPUT": str(tmp_path / "inv.gpkg"),
                                                        "SCHEDULER": dask_cluster.address})
    assert (result["N_DONE"], result["N_FAILED"], result["N_SLUMPS"]) == (1, 1, 1)
    slumps, scenes = QgsVectorLayer(result["SLUMPS"], "s", "ogr"), QgsVectorLayer(result["SCENES"], "sc", "ogr")
    assert slumps.isValid() and scenes.isValid() and slumps.featureCount() == 1 and scenes.featureCount() == 2
    assert sorted(f["status"] for f in scenes.getFeatures()) == ["done", "failed"]


def test_cancel_on_the_cluster_writes_no_inventory_and_keeps_done_scenes(dask_cluster, scene_folder, tmp_path):
    output = tmp_path / "inv.gpkg"
    request = BatchRequest(str(scene_folder), output, bands=RGB, scheduler=dask_cluster.address)
    with pytest.raises(Cancelled):  # cancelled once a scene is done
        run_batch(request, Progress(None, lambda: bool(_scene_files(output))))
    assert not output.exists() and 1 <= len(_scene_files(output)) < GOOD_SCENES
    assert not list(tmp_path.glob("inv.partial-*"))  # no half-written inventory either


def test_cluster_batch_with_a_killed_worker_equals_one_process_run(dask_cluster, scene_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("THAW_SLUMP_THREADS", "1")  # like the workers (results do not depend on it; the machine is small)
    (tmp_path / "one").mkdir(), (tmp_path / "cluster").mkdir()
    reference = run_batch(BatchRequest(str(scene_folder), tmp_path / "one" / "inv.gpkg", bands=RGB, serial=True))
    assert (reference.n_done, reference.n_failed) == (GOOD_SCENES, 2)

    victim = dask_cluster.workers[0]
    victim_address = dask_cluster.address_of(0)
    held: List[str] = []

    messages: List[str] = []

    def kill_a_busy_worker(fraction: float, message: str) -> None:
        messages.append(message)
        if held or message.startswith("0/") or not message[:1].isdigit():
            return
        keys = dask_cluster.watcher.processing(workers=[victim_address]).get(victim_address, [])
        if keys:
            held.extend(keys)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)

    output = tmp_path / "cluster" / "inv.gpkg"
    request = BatchRequest(str(scene_folder), output, bands=RGB, scheduler=dask_cluster.address)
    result = run_batch(request, Progress(kill_a_busy_worker))
    assert held, "the worker to kill held no scene once the first scene was done"
    assert any(re.fullmatch(rf"\d+/{ALL_SCENES} scenes, about \d+ (s|min) left", m) for m in messages), messages
    assert victim.poll() is not None
    assert (result.n_done, result.n_failed, result.n_skipped) == (GOOD_SCENES, 2, 0), result.failures

    # Scene by scene, the same as the one-process run: statuses, counts, footprints, polygons.
    mine, theirs = _scenes(output), _scenes(reference.output_path)
    assert set(mine) == set(theirs) and len(mine) == ALL_SCENES
    for key, row in mine.items():
        for field in ("status", "reason", "n_slumps", "n_inventory", "acquired", "bands", "source"):
            assert row[field] == theirs[key][field], (key, field)
        assert (row["geometry"] is None) == (theirs[key]["geometry"] is None)
        assert row["geometry"] is None or row["geometry"].equals(theirs[key]["geometry"])
    assert _inventory(output) == _inventory(reference.output_path)
    failed = {row["source"]: row["reason"] for row in mine.values() if row["status"] == "failed"}
    assert "not a raster GDAL can read" in failed["corrupt_random.tif"]
    assert "damaged or truncated" in failed["corrupt_truncated.tif"]
    # The killed worker's scene was redone by the other worker, once; nothing half-written is left.
    redone = [row for row in mine.values() if any(row["scene"] in key for key in held)]
    assert redone and all(row["status"] in ("done", "failed") for row in redone)
    assert any(row["worker"] != victim_address for row in redone)
    assert not list(work_folder(output).glob("*.partial-*"))
    # The slump in the overlap of the two crops is one feature with both sources.
    with fiona.open(str(output), layer="thaw_slumps") as src:
        overlap = [f.properties for f in src if "overlap" in f.properties["sources"]]
    assert len(overlap) == 1 and overlap[0]["n_scenes"] == 2

    # A rerun with the same output maps nothing again and leaves the inventory as it is.
    before, digest = _scene_files(output), _digest(output)
    again = run_batch(request)
    assert (again.n_done_before, again.n_done, again.inventory_written) == (GOOD_SCENES, GOOD_SCENES, False)
    assert _scene_files(output) == before and _digest(output) == digest


# --- the command line and make ------------------------------------------------------------------

def test_make_detect_batch_matches_detect_per_scene_and_reruns_at_once(shared_data, tmp_path):
    chips = sorted((shared_data / "arctic_rts_chips" / "chips").glob("*.tif"))
    folder = tmp_path / "scenes"
    folder.mkdir()
    for chip in (chips[0], chips[3]):  # each with one slump
        shutil.copy(chip, folder / chip.name)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")])))
    command = ["make", "-s", "-C", str(REPO), "detect-batch", f"INPUTS={folder}", f"OUTPUT={tmp_path / 'inv.gpkg'}", "BANDS=1,2,3", "WORKERS=1"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "2/2 scenes done" in first.stdout and "LocalCluster" in first.stdout
    inventory = _inventory(tmp_path / "inv.gpkg")
    for chip in folder.glob("*.tif"):
        single = run_detection(DetectionRequest(chip, None, bands=list(RGB)))
        assert sorted(_norm(f.geometry) for f in single.features) == [g for g, _ in inventory.get(chip.name, [])]
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0 and "(2 from earlier runs)" in second.stdout and "nothing to map" in second.stdout
    assert "unchanged" in second.stdout
    bad = subprocess.run([sys.executable, "-m", "thaw_slump_mapper", "detect-batch", str(tmp_path / "none"), str(tmp_path / "x.gpkg")],
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in bad.stderr


def test_qgis_process_runs_the_batch_on_a_local_cluster(shared_data, tmp_path):
    """Inside QGIS sys.executable is not QGIS's Python (qgis_process reports the first python3
    on PATH): the LocalCluster's workers must still start, from the right interpreter."""
    qgis_process = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
    if not Path(qgis_process).is_file():
        missing("qgis_process.bin is not installed (Debian package qgis)")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "thaw_slump_mapper").symlink_to(REPO, target_is_directory=True)
    folder = tmp_path / "scenes"
    folder.mkdir()
    shutil.copy(shared_data / "arctic_rts_chips" / "chips" / OVERLAP_CHIP, folder / OVERLAP_CHIP)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(plugins), QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "config"),
               PYTHONPATH=os.pathsep.join(filter(None, [sysconfig.get_paths()["purelib"], os.environ.get("PYTHONPATH")])))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([qgis_process, *args], env=env, capture_output=True, text=True, timeout=600)

    assert run("plugins", "enable", "thaw_slump_mapper").returncode == 0
    done = run("run", "thawslump:detect_batch", "--", f"INPUTS={folder}", f"OUTPUT={tmp_path / 'inv.gpkg'}", "BANDS=1,2,3", "WORKERS=1")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "LocalCluster" in done.stdout + done.stderr and "N_DONE:\t1" in done.stdout
    assert _scenes(tmp_path / "inv.gpkg")[collect_scenes(str(folder), RGB)[0].key]["status"] == "done"
