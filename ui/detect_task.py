"""The detection as a QGIS background task, so the map stays usable while the network runs.

``run()`` executes in a worker thread: it calls the same engine function as the Processing
algorithm and the command line (engine.detect.run_detection), touches no layer, widget or
project, and never raises. The dock reads the outcome in ``finished()`` on the main thread.
A cancelled or failed run removes every file it created, so nothing half-written is left.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

# Files GDAL/SQLite may create next to an output; all of them go when a run is abandoned.
SIDECAR_SUFFIXES = ("", "-wal", "-shm", "-journal", ".aux.xml", ".partial")


@dataclass
class DetectOutcome:
    """What the main thread needs after the task: a result, or a message for the user."""

    result: Any = None  # engine.detect.DetectionResult
    error: Optional[str] = None  # one line for the message bar
    details: str = ""  # traceback for the log, only for unexpected errors
    cancelled: bool = False
    morphometry_note: str = ""
    polygon_layer: Optional[str] = None  # the layer to show: detection, or its morphometry copy


class DetectTask(QgsTask):
    # Emitted from the worker thread; Qt queues it to the dock on the main thread.
    message = pyqtSignal(str)

    def __init__(
        self,
        request: Any,
        on_done: Callable[["DetectTask"], None],
        dem_path: Optional[str] = None,
        description: str = "Detect thaw slumps",
    ) -> None:
        super().__init__(description, QgsTask.CanCancel)
        self.request = request
        self.dem_path = dem_path
        self.on_done = on_done
        self.outcome = DetectOutcome()
        self._created_files: List[Path] = self._files_to_clean(request)
        self._last_message = ""

    @staticmethod
    def _files_to_clean(request: Any) -> List[Path]:
        """Outputs that do not exist yet: only those may be deleted if the run is abandoned."""
        paths = [p for p in (request.output_path, request.probability_path) if p is not None]
        candidates = [Path(str(p) + suffix) for p in paths for suffix in SIDECAR_SUFFIXES]
        return [p for p in candidates if not p.exists()]

    def _progress(self, fraction: float, message: str) -> None:
        self.setProgress(100.0 * fraction)
        if message and message != self._last_message:
            self._last_message = message
            self.message.emit(message)

    def run(self) -> bool:  # worker thread: no layers, widgets or project here
        try:
            from ..core.errors import Cancelled, UserError
            from ..core.progress import Progress
            from ..engine.detect import run_detection
        except ImportError as err:
            self.outcome.error = f"A Python package the detection needs is missing ({err}); install it from the dock."
            return False
        try:
            progress = Progress(callback=self._progress, is_cancelled=self.isCanceled)
            detect_share = 0.9 if self.dem_path else 1.0
            self.outcome.result = run_detection(self.request, progress.sub(0.0, detect_share))
            if self.dem_path:
                self.outcome.morphometry_note = self._morphometry(progress.sub(detect_share, 1.0))
            progress.check_cancelled()
            return True
        except Cancelled:
            self.outcome.cancelled = True
        except UserError as err:
            self.outcome.error = str(err)
        except Exception as err:  # noqa: BLE001 - a task must never raise into QGIS
            self.outcome.error = f"Detection failed: {type(err).__name__}: {err}"
            self.outcome.details = traceback.format_exc()
        self.outcome.result = None
        self._remove_created_files()
        return False

    def _morphometry(self, progress: Any) -> str:
        """Add the morphometry fields to the detections when a DEM was chosen."""
        from ..analysis.morphometry import compute_morphometry
        from ..core.errors import Cancelled, UserError

        result = self.outcome.result
        if result is None or result.output_path is None:
            return "Morphometry skipped: the detection was not written to a file."

        output_layer = f"{result.layer_name}_morphometry"
        try:
            if not result.features:
                return "Morphometry skipped: no slumps were found."
            # A copy with the fields added, in the same GeoPackage; the dock shows that copy.
            compute_morphometry(
                Path(result.output_path), Path(result.output_path), Path(self.dem_path),
                input_layer=result.layer_name, output_layer=output_layer, progress=progress,
            )
            self.outcome.polygon_layer = output_layer
        except Cancelled:
            raise
        except (UserError, TypeError, ValueError, OSError) as err:
            # The detection itself is good; a morphometry problem must not throw it away.
            return f"Morphometry not added: {err}"
        return "Morphometry fields added from the DEM."

    def cancel(self) -> None:
        self.message.emit("Cancelling after the current batch...")
        super().cancel()

    def _remove_created_files(self) -> None:
        for path in self._created_files:
            try:
                if path.is_file():
                    path.unlink()
            except OSError:
                pass

    def finished(self, ok: bool) -> None:  # main thread
        if not ok and not self.outcome.cancelled and self.outcome.error is None and self.isCanceled():
            self.outcome.cancelled = True
        self.on_done(self)
