"""Batch detection: many scenes, one merged inventory, resumable.

    run_batch(BatchRequest(inputs="scenes/", output_path=Path("inventory.gpkg")), progress)

The work folder ``<output stem>.scenes/`` beside the output holds one result file per done
scene (see worker.py) and ``batch.json`` (the detection settings and a fingerprint of the
inventory last written). A rerun with the same output maps only the scenes without a result
file, and rewrites the inventory only when something changed.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ...core.errors import Cancelled, UserError
from ...core.progress import Progress
from .merge import MergeSummary, merge_inventory
from .scenes import Scene, collect_scenes
from .worker import PARTIAL_MARK, DetectionSettings, SceneTask, detect_scene, one_line, probability_file, scene_file

MANIFEST = "batch.json"
POLL_S = 0.5


@dataclass
class BatchRequest:
    inputs: str                              # folder, glob, raster, or .txt/.csv list of paths (optional bands)
    output_path: Path                        # the merged GeoPackage
    checkpoint_path: Optional[Path] = None   # None: the bundled model
    bands: Optional[Sequence[int]] = None    # for scenes whose list entry names no bands
    threshold: Optional[float] = None
    min_area_m2: Optional[float] = None
    device: str = "auto"
    backend: str = "auto"
    batch_size: Optional[int] = None  # None: the predictor's own (engine/backends.py)
    scheduler: Optional[str] = None          # tcp://host:port of a running Dask cluster; None: a LocalCluster here
    workers: Optional[int] = None            # LocalCluster workers; None: sized to this machine
    serial: bool = False                     # no Dask: one scene after another in this process
    overwrite: bool = False                  # replace an output the batch did not write / redo scenes made with other settings


@dataclass
class BatchResult:
    output_path: Path
    engine: str
    n_scenes: int
    n_done: int
    n_done_before: int
    n_failed: int
    n_skipped: int
    n_slumps: int
    n_merged: int
    inventory_written: bool
    elapsed_s: float
    failures: List[Tuple[str, str]] = field(default_factory=list)


def work_folder(output_path: Path) -> Path:
    return output_path.with_name(output_path.stem + ".scenes")


def run_batch(request: BatchRequest, progress: Optional[Progress] = None) -> BatchResult:
    progress = progress or Progress()
    started = time.perf_counter()
    output = _checked_output(Path(request.output_path))
    scenes = collect_scenes(request.inputs, request.bands)
    unique, statuses = _skip_repeated(scenes)
    work = work_folder(output)
    _check_ownership(output, _read_manifest(work), request.overwrite)  # before anything is created
    work.mkdir(exist_ok=True)
    with _exclusive(work):
        manifest = _prepare_work_folder(work, output, request, unique)
        todo = [s for s in unique if not scene_file(work, s.key).exists()]
        engine, outcomes = _map_scenes(work, todo, request, progress, len(unique))
        # A scene with a result file is done, whatever an earlier attempt on a dead worker said.
        statuses.update({o["key"]: o for o in outcomes if o["status"] != "done" and not scene_file(work, o["key"]).exists()})
        written, summary = _write_inventory(output, work, scenes, statuses, manifest)
        _remove_partials(work)
    failures = [(s.name, statuses[s.key]["reason"]) for s in unique if statuses.get(s.key, {}).get("status") == "failed"]
    n_done = sum(1 for s in unique if scene_file(work, s.key).exists())
    progress.report(1.0, f"{n_done}/{len(unique)} scenes done, {len(failures)} failed")
    return BatchResult(
        output, engine, len(scenes), n_done, len(unique) - len(todo), len(failures), len(scenes) - len(unique),
        summary.n_slumps if summary else _count_slumps(output), summary.n_merged if summary else 0,
        written, time.perf_counter() - started, failures,
    )


def _prepare_work_folder(work: Path, output: Path, request: BatchRequest, scenes: List[Scene]) -> Dict[str, Any]:
    """Refuse what must not be mixed or replaced, clear leftovers, record the settings."""
    settings = _settings(request)
    manifest = _read_manifest(work)
    _check_ownership(output, manifest, request.overwrite)
    _check_settings(work, manifest, settings, scenes, request.overwrite)
    _remove_partials(work)
    manifest = dict(manifest, settings=settings)
    _write_manifest(work, manifest)
    return manifest


def _map_scenes(work: Path, todo: List[Scene], request: BatchRequest, progress: Progress, n_total: int) -> Tuple[str, List[Dict[str, Any]]]:
    tasks = [SceneTask(s, str(work), _detection_settings(request)) for s in todo]
    try:
        return _execute(tasks, request, progress, n_total - len(todo), n_total)
    except BaseException:
        if not request.scheduler:  # this machine's workers are gone: so is any use for their leftovers
            _remove_partials(work)
        raise


def _checked_output(output: Path) -> Path:
    output = output.expanduser().absolute()
    if output.suffix.lower() != ".gpkg":
        raise UserError(f"Write the batch inventory to a .gpkg file (got {output.name}).")
    if not output.parent.is_dir():
        raise UserError(f"The output folder {output.parent} does not exist; create it or choose another output.")
    if not os.access(output.parent, os.W_OK):
        raise UserError(f"Cannot write to {output.parent}; choose a folder you can write to.")
    return output


def _skip_repeated(scenes: List[Scene]) -> Tuple[List[Scene], Dict[str, Dict[str, Any]]]:
    """Each scene once; a repeated entry is listed as skipped under '<key>#<n>' (see _with_repeats)."""
    entries = _with_repeats(scenes)
    statuses = {s.key: {"status": "skipped", "reason": "listed again: same file and bands as an earlier entry"}
                for s in entries if "#" in s.key}
    return [s for s in entries if "#" not in s.key], statuses


@contextmanager
def _exclusive(work: Path) -> Iterator[None]:
    """One batch at a time per output: a second client would merge half of the first's work."""
    handle = open(work / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise UserError(f"Another batch is writing to {work}; wait for it to finish or choose another output.") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _settings(request: BatchRequest) -> Dict[str, Any]:
    """What makes two runs' polygons comparable: the model file's content and the cut-offs."""
    from ...core.checkpoint import checkpoint_or_bundled

    checkpoint = checkpoint_or_bundled(request.checkpoint_path)
    if not checkpoint.is_file():
        raise UserError(f"Checkpoint not found: {checkpoint}.")
    return {"checkpoint_sha1": _file_hash(checkpoint, "sha1"), "threshold": request.threshold, "min_area_m2": request.min_area_m2}


def _detection_settings(request: BatchRequest) -> DetectionSettings:
    return DetectionSettings(
        str(Path(request.checkpoint_path).absolute()) if request.checkpoint_path else None, request.threshold,
        request.min_area_m2, request.device, request.backend, request.batch_size,
    )


def _read_manifest(work: Path) -> Dict[str, Any]:
    try:
        return json.loads((work / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def _write_manifest(work: Path, manifest: Dict[str, Any]) -> None:
    tmp = work / (MANIFEST + PARTIAL_MARK + "tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(work / MANIFEST)


def _check_ownership(output: Path, manifest: Dict[str, Any], overwrite: bool) -> None:
    """Replace only an inventory this batch wrote and nobody has changed since."""
    if overwrite or not output.exists():
        return
    written = manifest.get("inventory", {}).get("sha256")
    if written is None:
        raise UserError(f"{output.name} exists and was not written by this batch; choose a new output or pass --overwrite.")
    if written != _file_hash(output, "sha256"):
        raise UserError(f"{output.name} changed since the batch wrote it (edited?); choose a new output to keep it, or pass --overwrite.")


def _check_settings(work: Path, manifest: Dict[str, Any], settings: Dict[str, Any], scenes: List[Scene], overwrite: bool) -> None:
    done = [s for s in scenes if scene_file(work, s.key).exists()]
    if not done or manifest.get("settings") in (None, settings):
        return
    if not overwrite:
        raise UserError(
            f"{len(done)} scenes in {work.name} were mapped with another checkpoint or threshold; "
            "rerun with the same settings, choose a new output, or pass --overwrite to map them again."
        )
    for scene in done:
        scene_file(work, scene.key).unlink(missing_ok=True)
        probability_file(work, scene.key).unlink(missing_ok=True)


def _remove_partials(work: Path) -> None:
    """Leftovers of killed workers or an interrupted merge; nothing ever reads them."""
    for path in work.glob(f"*{PARTIAL_MARK}*"):
        path.unlink(missing_ok=True)


def _execute(tasks: List[SceneTask], request: BatchRequest, progress: Progress, n_before: int, n_total: int) -> Tuple[str, List[Dict[str, Any]]]:
    counter = _ProgressCounter(progress, n_before, n_total)
    counter.report()
    if not tasks:
        return "nothing to map", []
    if request.serial:
        return "this process, one scene at a time", [counter.add(_run_here(task, counter.scene_progress())) for task in tasks]
    with _client(request) as (client, engine):
        return engine, _run_on_dask(client, tasks, counter)


def _client(request: BatchRequest):
    try:
        from .cluster import dask_client
    except ImportError:
        raise UserError("Dask is not installed; pip install dask distributed (or run with --serial).") from None
    return dask_client(request.scheduler, request.workers)


def _run_here(task: SceneTask, progress: Progress) -> Dict[str, Any]:
    progress.check_cancelled()
    return detect_scene(task, progress)


def _run_on_dask(client, tasks: List[SceneTask], counter: "_ProgressCounter") -> List[Dict[str, Any]]:
    from distributed import wait

    token = os.urandom(4).hex()
    futures = {client.submit(detect_scene, task, key=f"thawslump-{task.scene.key}-{token}", pure=False, retries=1): task for task in tasks}
    pending, outcomes = set(futures), []
    try:
        while pending:
            if counter.cancelled():
                raise Cancelled("Cancelled by the user; the scenes already done are kept for the next run.")
            try:
                finished, pending = wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            for future in finished:
                outcomes.append(counter.add(_outcome_of(future, futures[future])))
    finally:
        if pending:
            client.cancel(list(pending))
    return outcomes


def _outcome_of(future, task: SceneTask) -> Dict[str, Any]:
    """The scene's outcome. result() also covers a finished scene whose worker died before
    the client fetched the small record: Dask then recomputes it (and the result file,
    renamed into place, is the same). Exceptions here are Dask's own (workers that kept dying,
    a worker that cannot import the plugin, a cancel), never the scene's."""
    from .worker import outcome

    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - becomes the scene's one-line reason
        if scene_file(task.work_dir, task.scene.key).exists():
            return outcome(task, "done")
        if type(error).__name__ == "KilledWorker":
            reason = "the workers running it died repeatedly (out of memory? see the worker logs)"
        elif isinstance(error, ImportError):
            reason = f"a worker cannot import the plugin ({one_line(error)}); install thaw_slump_mapper on the workers"
        else:
            reason = one_line(error)
        return outcome(task, "failed", reason=reason)


class _ProgressCounter:
    """Scenes done out of the total, with a time estimate from this run's pace."""

    def __init__(self, progress: Progress, n_before: int, n_total: int) -> None:
        self.progress, self.n_before, self.n_total = progress, n_before, n_total
        self.finished = 0
        self.started = time.perf_counter()

    def cancelled(self) -> bool:
        return self.progress.cancelled()

    def scene_progress(self) -> Progress:
        """The running scene's own progress as a slice of the batch (serial runs)."""
        done = self.n_before + self.finished
        prefix = f"{done}/{self.n_total} scenes: "
        scene = Progress(lambda fraction, message: self.progress.report(fraction, prefix + message), self.progress.cancelled)
        return scene.sub(done / max(1, self.n_total), (done + 1) / max(1, self.n_total))

    def add(self, outcome: Dict[str, Any]) -> Dict[str, Any]:
        self.finished += 1
        self.report()
        return outcome

    def report(self) -> None:
        done = self.n_before + self.finished
        left = self.n_total - done
        message = f"{done}/{self.n_total} scenes"
        if self.finished and left:
            seconds = (time.perf_counter() - self.started) / self.finished * left
            message += f", about {_duration(seconds)} left"
        self.progress.report(done / max(1, self.n_total), message)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _state(work: Path, scenes: List[Scene], statuses: Dict[str, Dict[str, Any]]) -> str:
    """What the inventory is made of: each scene's result file, or its failure reason."""
    parts = []
    for scene in scenes:
        path = scene_file(work, scene.key)
        if path.exists():
            stat = path.stat()
            parts.append(f"{scene.key}:done:{stat.st_size}:{stat.st_mtime_ns}")
        else:
            parts.append(f"{scene.key}:{statuses.get(scene.key, {}).get('status')}:{statuses.get(scene.key, {}).get('reason')}")
    parts += sorted(f"{k}:{v['status']}" for k, v in statuses.items() if "#" in k)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _write_inventory(output: Path, work: Path, scenes: List[Scene], statuses: Dict[str, Dict[str, Any]],
                     manifest: Dict[str, Any]) -> Tuple[bool, Optional[MergeSummary]]:
    """(written, summary); the inventory is left as it is when nothing changed since it was written."""
    state = _state(work, scenes, statuses)
    inventory = manifest.get("inventory", {})
    if output.exists() and inventory.get("state") == state and inventory.get("sha256") == _file_hash(output, "sha256"):
        return False, None
    summary = merge_inventory(output, _with_repeats(scenes), work, statuses)
    manifest["inventory"] = {"state": state, "sha256": _file_hash(output, "sha256")}
    _write_manifest(work, manifest)
    return True, summary


def _with_repeats(scenes: List[Scene]) -> List[Scene]:
    """Every list entry, a repeated one under '<key>#<n>' so the scenes layer has a row for each."""
    seen: Dict[str, int] = {}
    out = []
    for scene in scenes:
        seen[scene.key] = seen.get(scene.key, 0) + 1
        out.append(scene if seen[scene.key] == 1 else Scene(scene.path, scene.bands, f"{scene.key}#{seen[scene.key]}"))
    return out


def _count_slumps(output: Path) -> int:
    import fiona

    from .merge import INVENTORY_LAYER

    with fiona.open(str(output), layer=INVENTORY_LAYER) as src:
        return len(src)


def _file_hash(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
