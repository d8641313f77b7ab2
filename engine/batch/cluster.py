"""Where the scenes run: a Dask LocalCluster sized to this machine, or an existing Dask
cluster reached through its scheduler's address (SLURM through dask-jobqueue, or any other).
No home-made scheduling: Dask places tasks, retries those of a dead worker elsewhere and
gives up on a scene that killed `distributed.scheduler.allowed-failures` workers."""
from __future__ import annotations

import logging
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from ...core.errors import UserError
from ..backends import THREADS_ENV

MEMORY_PER_WORKER_BYTES = 4 * 1024**3  # a detection peaks at 2-3 GB on large scenes (BENCHMARKS.md)
SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc)://[^\s/]+(:\d+)?/?$")
WAIT_FOR_WORKERS_S = 60.0
# Dask's Nanny sets these in its OWN process before spawning each worker (in QGIS that would be
# QGIS's environment, inherited by every tool it starts later). We give them to the workers only.
# MALLOC_TRIM_THRESHOLD_=65536 is left out: it cost this engine's large-array work about 15 %
# more CPU in a worker (measured: 5.0 s against 4.4 s for one 1536 x 1536 scene).
NANNY_PRE_SPAWN = ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class LocalPlan:
    workers: int
    threads_per_detection: int
    gpus: int

    def describe(self) -> str:
        per = f"one GPU each ({self.gpus} GPUs)" if self.gpus else f"{self.threads_per_detection} CPU thread(s) each"
        return f"Dask LocalCluster, {self.workers} worker(s), {per}"


def local_plan(workers: Optional[int] = None) -> LocalPlan:
    """One worker per GPU on a GPU machine; otherwise one per core, as memory allows,
    each detection using its share of the cores. ``workers`` overrides the count."""
    cores = os.cpu_count() or 1
    gpus = _gpu_count()
    if workers is not None and workers < 1:
        raise UserError(f"The number of workers must be at least 1 (got {workers}).")
    if workers is None:
        by_memory = max(1, _total_memory() // MEMORY_PER_WORKER_BYTES)
        workers = gpus if gpus else max(1, min(cores, by_memory))
    return LocalPlan(workers, max(1, cores // workers), gpus)


@contextmanager
def dask_client(scheduler: Optional[str], workers: Optional[int]) -> Iterator["tuple"]:
    """(client, description) for the scheduler at ``scheduler``, or for a LocalCluster
    started here and closed (workers and all) when the block ends."""
    from distributed import Client, LocalCluster

    if scheduler:
        client = _connect(scheduler)
        try:
            yield client, f"Dask cluster at {scheduler} ({len(client.scheduler_info()['workers'])} workers)"
        finally:
            client.close()
        return
    import dask

    plan = local_plan(workers)
    _python_for_worker_processes()
    threads = str(plan.threads_per_detection)
    with dask.config.set({f"distributed.nanny.pre-spawn-environ.{name}": None for name in NANNY_PRE_SPAWN}):
        cluster = LocalCluster(
            n_workers=plan.workers, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR,
            env={THREADS_ENV: threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads},
        )
    client = Client(cluster)
    try:
        yield client, plan.describe()
    finally:
        client.close()
        cluster.close()


def _connect(scheduler: str):
    from distributed import Client

    if not SCHEDULER_ADDRESS.match(scheduler.strip()):
        raise UserError(f"{scheduler!r} is not a Dask scheduler address; give it as tcp://host:port.")
    try:
        client = Client(scheduler.strip(), timeout="15s")
    except (OSError, TimeoutError) as err:
        reason = str(err).splitlines()[0][:80]
        raise UserError(
            f"Cannot reach the Dask scheduler at {scheduler} ({reason}); start it or leave the scheduler empty to use this machine."
        ) from None
    try:
        client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS_S)
    except TimeoutError:
        client.close()
        raise UserError(
            f"No Dask worker joined the scheduler at {scheduler} within {WAIT_FOR_WORKERS_S:.0f} s; "
            f"start workers (dask worker {scheduler})."
        ) from None
    return client


def _python_for_worker_processes() -> None:
    """Worker processes are spawned from sys.executable, which inside QGIS is not this
    interpreter (qgis_process reports the first python3 on PATH, perhaps another version; the
    desktop may report QGIS itself): use the Python whose standard library this process runs."""
    if _same_python(sys.executable):
        return
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(sys.base_exec_prefix) / "bin"
    for candidate in (base / version, base / "python3", shutil.which(version)):
        if candidate and _same_python(str(candidate)):
            multiprocessing.set_executable(str(candidate))
            return
    raise UserError(f"Cannot find the {version} interpreter this program runs on, to start Dask workers; "
                    "give a running cluster's scheduler address, or run the batch serially.")


def _same_python(executable: Optional[str]) -> bool:
    if not executable:
        return False
    try:
        probe = subprocess.run([executable, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and probe.stdout.strip() == sys.version.strip()


def _gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return MEMORY_PER_WORKER_BYTES
