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
from typing import Callable, Generic, Optional, TypeVar

T = TypeVar("T")


def prefetch_pays(device: str, training_threads: int, cpu_count: Optional[int] = None) -> bool:
    """Whether a batch thread hides batch building: on CUDA (the CPU is otherwise idle), or
    when the CPU has a core beyond the training threads. Where the network's threads already
    take every core, the thread only preempts them: on 2 cores with 2 threads a main-phase
    step took 0.59-0.68 s prefetched against 0.53-0.55 s inline (docs/TRAINING.md)."""
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return device != "cpu" or cores > training_threads


class BatchPrefetcher(Generic[T]):
    """Calls ``make_batch`` ahead of use, ``depth`` batches deep; ``close()`` stops it."""

    def __init__(self, make_batch: Callable[[], T], depth: int = 3) -> None:
        self._make_batch = make_batch
        self._queue: "queue.Queue[tuple]" = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="batch-prefetch", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        while not self._stop.is_set():
            try:
                item: tuple = ("ok", self._make_batch())
            except BaseException as err:  # handed to the consumer, which re-raises it
                item = ("error", err)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if item[0] == "error":
                return

    def next(self, timeout: Optional[float] = None) -> T:
        kind, value = self._queue.get(timeout=timeout)
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "BatchPrefetcher[T]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
