"""Callbacks of the training loop: keep the best weights by validation IoU, stop early when
they stop improving, and keep them when the user cancels (no QGIS, no Qt)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from ..core.checkpoint import Checkpoint, save_checkpoint
from ..core.errors import Cancelled

StateDict = Dict[str, Any]
IOU_TIE = 1e-4  # IoU differences this small count as a tie; the lower validation loss then wins


@dataclass
class BestWeights:
    """The best epoch so far (validation pixel IoU, ties broken by validation loss) and the
    number of epochs since it, for early stopping."""

    patience: int
    state: Optional[StateDict] = None
    metrics: Dict[str, float] = field(default_factory=dict)
    epochs_without_gain: int = 0

    def is_better(self, record: Dict[str, float]) -> bool:
        if self.state is None:
            return True
        iou, best_iou = record["val_pixel_iou"], self.metrics["val_pixel_iou"]
        return iou > best_iou + IOU_TIE or (abs(iou - best_iou) <= IOU_TIE and record["val_loss"] < self.metrics["val_loss"])

    def update(self, record: Dict[str, float], snapshot: Callable[[], StateDict]) -> None:
        """Called after each validated epoch."""
        if self.is_better(record):
            self.state, self.metrics, self.epochs_without_gain = snapshot(), dict(record), 0
        else:
            self.epochs_without_gain += 1

    def patience_exhausted(self) -> bool:
        return self.epochs_without_gain >= self.patience


def cancel_keeping_best(best_state: StateDict, as_checkpoint: Callable[[StateDict], Checkpoint],
                        cancelled_path: Optional[Path]) -> None:
    """Raise Cancelled; first save the best weights so far to ``cancelled_path`` when given."""
    if cancelled_path is not None:
        save_checkpoint(as_checkpoint(best_state), cancelled_path)
        raise Cancelled(f"Training cancelled; the best weights so far are in {cancelled_path}.")
    raise Cancelled("Training cancelled.")


def cancelled_best_path(output: Path) -> Path:
    """``<name>.cancelled-best.pt`` beside the requested output."""
    output = Path(output)
    return output.with_name(output.stem + ".cancelled-best" + (output.suffix or ".pt"))
