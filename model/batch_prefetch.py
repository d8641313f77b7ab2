"""Build training batches in a background thread so the network never waits for them.

Augmentation is numpy and torch work that mostly releases the GIL, so one thread that
stays a few batches ahead hides it behind the forward and backward pass, when there is a
core for it. The batch order depends only on the seeded generator the thread owns, so a
run stays reproducible.
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Callable, Generic, List, Optional, Sequence, TypeVar

T = TypeVar("T")


def prefetch_pays(device: str, training_threads: int, cpu_count: Optional[int] = None) -> bool:
    """Whether a batch thread hides batch building: on CUDA (the CPU is otherwise idle), or
    when the CPU has a core beyond the training threads. Where the network's threads already
    take every core, the thread only preempts them: on 2 cores with 2 threads a main-phase
    step took 0.59-0.68 s prefetched against 0.53-0.55 s inline (docs/TRAINING.md)."""
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return device != "cpu" or cores > training_threads


def prefetch_workers(device: str, training_threads: int, cpu_count: Optional[int] = None) -> int:
    """How many batch threads to run. One on the CPU. On CUDA as many as the free cores allow,
    up to 6: one thread built a batch of 32 crops of 256 px in 0.24 s on an H200 machine's
    CPU, while the GPU's step needs a fraction of that, so one thread held a step at
    0.7 s (BENCHMARKS.md). Batch building is numpy work that releases the GIL: two
    threads built 1.9x the batches of one here."""
    if device == "cpu":
        return 1
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, min(6, cores - training_threads - 1))


class BatchPrefetcher(Generic[T]):
    """Calls ``make_batch`` ahead of use, ``depth`` batches deep; ``close()`` stops it.

    Given several makers (each with its own seeded generator), one thread runs each and
    ``next`` takes their batches in turn, so the order stays reproducible."""

    def __init__(self, make_batch: Callable[[], T] | Sequence[Callable[[], T]], depth: int = 3) -> None:
        makers = list(make_batch) if isinstance(make_batch, (list, tuple)) else [make_batch]
        self._stop = threading.Event()
        self._queues: "List[queue.Queue[tuple]]" = [queue.Queue(maxsize=max(1, depth)) for _ in makers]
        self._threads = [threading.Thread(target=self._fill, args=(maker, q), name="batch-prefetch", daemon=True)
                         for maker, q in zip(makers, self._queues)]
        self._thread = self._threads[0]
        self._turn = 0
        for thread in self._threads:
            thread.start()

    def _fill(self, make_batch: Callable[[], T], out: "queue.Queue[tuple]") -> None:
        while not self._stop.is_set():
            try:
                item: tuple = ("ok", make_batch())
            except BaseException as err:  # handed to the consumer, which re-raises it
                item = ("error", err)
            while not self._stop.is_set():
                try:
                    out.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if item[0] == "error":
                return

    def next(self, timeout: Optional[float] = None) -> T:
        source = self._queues[self._turn]
        self._turn = (self._turn + 1) % len(self._queues)
        kind, value = source.get(timeout=timeout)
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        self._stop.set()
        for source in self._queues:
            try:
                while True:
                    source.get_nowait()
            except queue.Empty:
                pass
        for thread in self._threads:
            thread.join(timeout=5.0)

    def __enter__(self) -> "BatchPrefetcher[T]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
