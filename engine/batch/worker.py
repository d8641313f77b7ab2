"""One scene on a worker: the unchanged engine (run_detection) writes the scene's result file.

The result is ``<key>.gpkg`` in the batch's work folder, holding the engine's polygon layer
and a one-feature ``scene`` layer (footprint, date, counts, time). Everything is written
under a unique temporary name and renamed into place last, so a worker killed half way
leaves only a ``*.partial-*`` file that nothing reads: a scene counts as done exactly when
``<key>.gpkg`` exists. Only a small dict (status, counts, reason) goes back to the client.
"""
from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from ...core.errors import Cancelled
from ...core.file_names import DEFAULT_LAYER, probability_path
from ...core.progress import Progress
from .scenes import Scene, acquisition_date

SLUMP_LAYER = DEFAULT_LAYER
SCENE_LAYER = "scene"
PARTIAL_MARK = ".partial-"
SCENE_SCHEMA = {
    "scene": "str:80", "path": "str", "source": "str:254", "bands": "str:40", "acquired": "str:10",
    "n_slumps": "int", "area_m2": "float", "elapsed_s": "float", "worker": "str:120", "finished": "str:32",
    "pixel_size": "float", "model": "str:120", "device": "str:80",
}


@dataclass(frozen=True)
class DetectionSettings:
    """The detection options every scene of a batch shares (bands may differ per scene)."""

    checkpoint_path: Optional[str] = None
    threshold: Optional[float] = None
    min_area_m2: Optional[float] = None
    device: str = "auto"
    backend: str = "auto"
    batch_size: Optional[int] = None  # None: the predictor's own (engine/backends.py)


@dataclass(frozen=True)
class SceneTask:
    scene: Scene
    work_dir: str
    settings: DetectionSettings


def scene_file(work_dir: Path | str, key: str) -> Path:
    return Path(work_dir) / f"{key}.gpkg"


def probability_file(work_dir: Path | str, key: str) -> Path:
    return probability_path(scene_file(work_dir, key))


def worker_label() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def outcome(task: SceneTask, status: str, reason: str = "", n_slumps: int = 0, elapsed_s: float = 0.0) -> Dict[str, Any]:
    return {"key": task.scene.key, "status": status, "reason": reason, "n_slumps": n_slumps,
            "elapsed_s": round(elapsed_s, 3), "worker": worker_label()}


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    from ...core.errors import UserError

    if isinstance(err, UserError):
        return text[:300]
    return f"{type(err).__name__}: {text}"[:300] if text else type(err).__name__


def _reason(task: SceneTask, err: Exception) -> str:
    from rasterio.errors import RasterioIOError

    if isinstance(err, RasterioIOError):  # opened, then a read failed: GDAL's message alone says little
        return f"{task.scene.name}: its pixels cannot be read ({one_line(err)}); the file may be damaged or truncated."[:300]
    return one_line(err)


def detect_scene(task: SceneTask, progress: Optional[Progress] = None) -> Dict[str, Any]:
    """Map one scene into its result file. Any failure comes back as status 'failed' with a
    one-line reason (the batch goes on); only a cancel is raised."""
    started = time.perf_counter()
    work = Path(task.work_dir)
    token = f"{PARTIAL_MARK}{uuid.uuid4().hex[:12]}"
    partial = work / f"{task.scene.key}{token}.gpkg"
    partial_probability = work / f"{task.scene.key}{token}_probability.tif"
    try:
        _share_cores_with_other_tasks()
        result = _run_engine(task, partial, partial_probability, progress)
        elapsed = time.perf_counter() - started
        _add_scene_layer(task, partial, result, elapsed)
        partial_probability.replace(probability_file(work, task.scene.key))
        partial.replace(scene_file(work, task.scene.key))  # last: from here on the scene counts as done
        return outcome(task, "done", n_slumps=result.n_slumps, elapsed_s=elapsed)
    except Cancelled:
        _remove(partial, partial_probability)
        raise
    except Exception as err:  # noqa: BLE001 - one bad scene must fail alone, with its reason
        _remove(partial, partial_probability)
        return outcome(task, "failed", reason=_reason(task, err), elapsed_s=time.perf_counter() - started)


def _run_engine(task: SceneTask, partial: Path, partial_probability: Path, progress: Optional[Progress]):
    from ..detect import DetectionRequest, run_detection

    settings = task.settings
    request = DetectionRequest(
        input_path=task.scene.path, output_path=partial, probability_path=partial_probability,
        checkpoint_path=Path(settings.checkpoint_path) if settings.checkpoint_path else None,
        bands=list(task.scene.bands) if task.scene.bands else None, threshold=settings.threshold,
        min_area_m2=settings.min_area_m2, device=_device_for_this_worker(settings.device),
        backend=settings.backend, batch_size=settings.batch_size, layer_name=SLUMP_LAYER,
    )
    return run_detection(request, progress)


def _add_scene_layer(task: SceneTask, partial: Path, result, elapsed: float) -> None:
    import fiona
    import rasterio
    from shapely.geometry import box, mapping

    with rasterio.open(task.scene.path) as src:
        footprint = box(*src.bounds)
        tags = dict(src.tags())
        pixel_size = abs(src.transform.a)
    record = {
        "scene": task.scene.key, "path": str(task.scene.path), "source": task.scene.name,
        "bands": ",".join(map(str, task.scene.bands or ())), "acquired": acquisition_date(tags, task.scene.name),
        "n_slumps": result.n_slumps, "area_m2": round(result.total_area_m2, 2), "elapsed_s": round(elapsed, 3),
        "worker": worker_label(), "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "pixel_size": pixel_size, "model": result.checkpoint_summary.split(":")[0][:120], "device": result.device_name[:80],
    }
    schema = {"geometry": "Polygon", "properties": SCENE_SCHEMA}
    with fiona.open(str(partial), "w", driver="GPKG", layer=SCENE_LAYER, schema=schema, crs_wkt=result.crs_wkt) as dst:
        dst.write({"geometry": mapping(footprint), "properties": record})


def _share_cores_with_other_tasks() -> None:
    """On a Dask worker running n tasks at once, give each detection 1/n of the cores
    (a LocalCluster sets THAW_SLUMP_THREADS itself, as it knows its workers share a machine)."""
    from ..backends import THREADS_ENV

    if os.environ.get(THREADS_ENV):
        return
    try:
        from distributed import get_worker

        concurrent = max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return  # not on a worker: this process runs one scene at a time and may use every core
    os.environ[THREADS_ENV] = str(max(1, (os.cpu_count() or 1) // concurrent))


def _device_for_this_worker(requested: str) -> str:
    """'auto' on a LocalCluster worker of a multi-GPU machine: the worker's own GPU
    (workers are named 0..n-1 there, one per GPU)."""
    if requested != "auto":
        return requested
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return requested
    if not isinstance(name, int):
        return requested
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return f"cuda:{name % count}" if count > 1 else requested


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
