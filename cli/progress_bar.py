"""A text progress bar on stderr for the command line (no dependency needed)."""
from __future__ import annotations

import sys
import time


class TextProgressBar:
    def __init__(self, label: str = "", width: int = 30, stream=None) -> None:
        # Look up sys.stderr now, not at import: tests and front ends swap it at run time.
        self.label, self.width, self.stream = label, width, stream or sys.stderr
        self._last = -1.0
        self._started = time.perf_counter()

    def __call__(self, fraction: float, message: str = "") -> None:
        if fraction - self._last < 0.01 and fraction < 1.0:
            return
        self._last = fraction
        filled = int(round(self.width * fraction))
        elapsed = time.perf_counter() - self._started
        line = f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:5.1f}% {elapsed:6.1f}s {message[:40]:<40}"
        self.stream.write(line)
        if fraction >= 1.0:
            self.stream.write("\n")
        self.stream.flush()

    def close(self) -> None:
        if self._last < 1.0:
            self.stream.write("\n")
            self.stream.flush()
