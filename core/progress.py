"""Progress reporting and cancellation shared by every long-running step.

Front ends pass plain callables (a tqdm bar, a QgsTask's setProgress, a Processing
feedback), so the engine stays free of QGIS and Qt.
"""
from __future__ import annotations

from typing import Callable, Optional

from .errors import Cancelled

ProgressCallback = Callable[[float, str], None]
CancelCheck = Callable[[], bool]


class Progress:
    """Maps a step's own 0..1 progress onto a slice of the parent's range."""

    def __init__(
        self,
        callback: Optional[ProgressCallback] = None,
        is_cancelled: Optional[CancelCheck] = None,
        start: float = 0.0,
        end: float = 1.0,
    ) -> None:
        self._callback = callback
        self._is_cancelled = is_cancelled
        self._start = start
        self._end = end

    def report(self, fraction: float, message: str = "") -> None:
        if self._callback is not None:
            fraction = min(max(fraction, 0.0), 1.0)
            self._callback(self._start + (self._end - self._start) * fraction, message)

    def cancelled(self) -> bool:
        return bool(self._is_cancelled and self._is_cancelled())

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise Cancelled("Cancelled by the user.")

    def sub(self, start: float, end: float) -> "Progress":
        """A child whose 0..1 covers ``start..end`` of this progress."""
        span = self._end - self._start
        return Progress(
            self._callback,
            self._is_cancelled,
            self._start + span * start,
            self._start + span * end,
        )
