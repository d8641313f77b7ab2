"""Ctrl-C and SIGTERM on the command line: the first one asks the run to stop at its next
safe point (temporary outputs are removed, nothing is moved into place); a second one stops
at once (temporary outputs are still removed on the way out).

A flag instead of Python's KeyboardInterrupt, because a KeyboardInterrupt raised inside a
destructor (rasterio's WarpedVRT.__del__) is swallowed and the run would finish regardless.
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

from ..core.progress import Progress

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class Interrupts:
    def __init__(self) -> None:
        self.signal_name: Optional[str] = None

    def cancelled(self) -> bool:
        return self.signal_name is not None

    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signal_name or "SIGINT", 130)

    def _handle(self, signum: int, _frame) -> None:
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        sys.stderr.write("\ncancelling at the next safe point; nothing will be written (signal again to stop at once)\n")
        sys.stderr.flush()

    @contextmanager
    def installed(self) -> Iterator["Interrupts"]:
        """Handle SIGINT and SIGTERM for the duration of one command (main thread only)."""
        self.signal_name = None
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


INTERRUPTS = Interrupts()


def cli_progress(bar) -> Progress:
    """A Progress reporting to a text bar and cancelled by Ctrl-C or SIGTERM."""
    return Progress(bar, INTERRUPTS.cancelled)
