"""Training and fine-tuning of the DeepLabV3+ thaw slump model (no QGIS, no Qt).

One loop serves the bundled model (from ImageNet EfficientNet-Lite0 weights, a fixed
number of steps so ``make train-bundled`` is reproducible, model/bundled_recipe.py) and user
fine-tuning (from a checkpoint, within a wall-clock budget so default settings always finish
in time on a 2-core CPU). The best weights by validation pixel IoU are kept; a cancelled run
writes them beside the requested output as ``<name>.cancelled-best.pt``.

The units: the recipe (model/training_settings.py), the chips and base network
(model/training_start.py), one step / the schedule / validation (model/training_steps.py),
best weights, early stopping and cancel (model/early_stopping.py), threshold and minimum
area calibration (model/calibration.py).
"""
from __future__ import annotations

import copy
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.checkpoint import Checkpoint, save_checkpoint
from ..core.chip_format import LoadedChip, read_manifest
from ..core.devices import resolve_device
from ..core.errors import UserError
from ..core.progress import Progress
from .augment import AugmentSettings
from .batch_prefetch import BatchPrefetcher, prefetch_pays, prefetch_workers
from .calibration import calibrate_on_chips
from .early_stopping import BestWeights, StateDict, cancel_keeping_best, cancelled_best_path
from .fine_tune_defaults import (
    FINE_TUNE_BATCH_CPU,
    FINE_TUNE_BATCH_CUDA,
    FINE_TUNE_CROP_PX,
    FINE_TUNE_ENCODER_WARMUP_SHARE,
    FINE_TUNE_EPOCHS,
    FINE_TUNE_FROZEN_STAGES,
    FINE_TUNE_LEARNING_RATE,
    FINE_TUNE_MINUTES_CPU,
    FINE_TUNE_MINUTES_CUDA,
    FINE_TUNE_VALIDATE_EVERY_S_CPU,
    FINE_TUNE_VALIDATE_EVERY_S_CUDA,
)
from .losses import loss_function
from .precision import Precision, choose_precision
from .training_settings import TrainSettings
from .training_start import load_training_chips, median_gsd, split_chips, starting_checkpoint
from .training_steps import (
    Batch,
    batch_maker,
    effective_crop_size,
    evaluate_pixels,
    freeze_whole_encoder,
    in_encoder_warmup,
    release_encoder,
    scheduled_learning_rate,
    seed_everything,
    time_left,
    train_mode,
    train_step,
    training_network,
)
from .weight_averaging import WeightAverage


# The default fine-tune: chosen by measurement (docs/TRAINING.md), bounded by the wall clock so it
# finishes within 30 minutes on a 2-core CPU, loading and calibration included.
def fine_tune_settings(**overrides: Any) -> TrainSettings:
    """Defaults for users: whole-chip crops (a slump plus its context), bf16 on a CPU with bf16 kernels
    and fp32 on others (choose_precision, docs/TRAINING.md), light augmentation in the hot path; on CUDA
    a larger batch, the same schedule by epochs."""
    base = TrainSettings(
        epochs=FINE_TUNE_EPOCHS, learning_rate=FINE_TUNE_LEARNING_RATE, batch_size=FINE_TUNE_BATCH_CPU,
        crop_size=FINE_TUNE_CROP_PX, max_minutes=FINE_TUNE_MINUTES_CPU,
        warmup_steps=30, patience=12, frozen_stages=FINE_TUNE_FROZEN_STAGES,
        encoder_warmup_share=FINE_TUNE_ENCODER_WARMUP_SHARE, validate_every_s=FINE_TUNE_VALIDATE_EVERY_S_CPU,
        augment=AugmentSettings(scale_jitter=0.2, degrade_prob=0.0, degrade_max_gsd=0.0, blur_prob=0.15,
                                colour_jitter=0.1, noise_std=0.01, nodata_prob=0.05, mosaic_prob=0.0, flips=True,
                                render_window=True),
    )
    device = overrides.get("device") or "auto"
    if resolve_device(device).startswith("cuda"):
        base.batch_size, base.learning_rate, base.epochs = FINE_TUNE_BATCH_CUDA, 2 * FINE_TUNE_LEARNING_RATE, 150
        base.max_minutes, base.validate_every_s = FINE_TUNE_MINUTES_CUDA, FINE_TUNE_VALIDATE_EVERY_S_CUDA
    for key, value in overrides.items():
        if value is not None:
            setattr(base, key, value)
    return base


@dataclass
class FitOutcome:
    checkpoint: Checkpoint
    history: List[Dict[str, float]]
    best_metrics: Dict[str, float]
    steps: int
    elapsed_s: float
    stopped_because: str
    crop_size: int = 0  # the crop actually used (see effective_crop_size)
    precision: str = "fp32"
    batch_threads: int = 0  # threads that built the batches ahead (0: built inline)


@dataclass
class TrainResult:
    checkpoint_path: Path
    checkpoint: Checkpoint
    metrics: Dict[str, Any]
    history: List[Dict[str, float]]
    elapsed_s: float
    n_train: int
    n_val: int


# --- The loop -----------------------------------------------------------------------------------
@dataclass
class TrainingRun:
    """What the loop's units share: the network and its optimiser, the schedule, the batches."""

    net: Any
    optimiser: Any
    scaler: Any
    precision: Precision
    loss_fn: Callable
    device: str
    settings: TrainSettings  # a copy holding the crop size actually used
    base: Checkpoint
    gsd_m: float
    started: float
    steps_per_epoch: int
    total_steps: int
    budget_s: Optional[float]
    make_batch: Callable[[], Batch]
    prefetcher: Optional[BatchPrefetcher] = None
    average: Optional[WeightAverage] = None  # with weight_average_span: the weights validated and kept
    step_observers: Sequence[Callable[[Any], None]] = ()  # called with the network after every step
    step: int = 0
    losses: List[float] = field(default_factory=list)

    def next_batch(self) -> Batch:
        return self.prefetcher.next() if self.prefetcher is not None else self.make_batch()

    def fraction_done(self, elapsed_s: float) -> float:
        """Of the step limit or of the time budget, whichever is further along."""
        fraction = self.step / self.total_steps
        return max(fraction, elapsed_s / self.budget_s) if self.budget_s else fraction

    def snapshot(self) -> StateDict:
        """The weights this run validates and keeps: the averaged ones when it averages."""
        if self.average is not None:
            return self.average.snapshot()
        return {k: v.detach().cpu().clone().contiguous() for k, v in self.net.state_dict().items()}

    def as_checkpoint(self, state: StateDict) -> Checkpoint:
        ckpt = copy.copy(self.base)
        ckpt.state_dict = state
        ckpt.gsd_m = float(self.gsd_m)
        ckpt.provenance = dict(self.base.provenance)
        return ckpt

    def close(self) -> None:
        if self.prefetcher is not None:
            self.prefetcher.close()


def start_run(base: Checkpoint, train_chips: List[LoadedChip], settings: TrainSettings, gsd_m: float,
              started: float, step_observers: Sequence[Callable[[Any], None]] = ()) -> TrainingRun:
    """Seed, build the network and optimiser, and size the schedule (in this order: the seeds
    decide the initial weights of new layers and the batches)."""
    import torch

    torch.set_num_threads(settings.threads or max(1, min(2, os.cpu_count() or 1)))
    seed_everything(settings.seed)
    rng = np.random.default_rng(settings.seed)
    device = resolve_device(settings.device)
    precision = choose_precision(device, settings.precision)
    net = training_network(base, settings, precision, device)
    # the optimiser holds every weight that trains at some point; during the encoder warm-up
    # the encoder's have no gradient, and AdamW leaves them (and their moments) untouched
    optimiser = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    if settings.encoder_warmup_share > 0:
        freeze_whole_encoder(net)
    train_mode(net)
    steps_per_epoch = settings.steps_per_epoch or max(1, math.ceil(len(train_chips) / settings.batch_size))
    total_steps = settings.epochs * steps_per_epoch
    if settings.max_steps:
        total_steps = min(total_steps, settings.max_steps)
    settings = copy.copy(settings)
    settings.crop_size = effective_crop_size(train_chips, gsd_m, settings)
    if settings.prefetch is None:  # resolved here, so the checkpoint's provenance records the choice
        settings.prefetch = prefetch_pays(device, torch.get_num_threads())
    make_batch = batch_maker(train_chips, gsd_m, base.scaling, settings, rng)
    prefetcher = None
    if settings.prefetch:  # the first thread draws from the run's generator, so one thread gives the inline batches
        if settings.prefetch_workers is None:
            settings.prefetch_workers = prefetch_workers(device, torch.get_num_threads())
        extra = [batch_maker(train_chips, gsd_m, base.scaling, settings, np.random.default_rng([settings.seed, k]))
                 for k in range(1, max(1, settings.prefetch_workers))]
        prefetcher = BatchPrefetcher([make_batch, *extra], depth=2 if extra else 3)
    return TrainingRun(
        net=net, optimiser=optimiser, scaler=precision.grad_scaler(), precision=precision,
        loss_fn=loss_function(settings.loss, settings.positive_weight),
        device=device, settings=settings, base=base, gsd_m=gsd_m, started=started, steps_per_epoch=steps_per_epoch,
        total_steps=total_steps, budget_s=settings.max_minutes * 60.0 if settings.max_minutes else None, make_batch=make_batch,
        prefetcher=prefetcher, step_observers=step_observers,
        average=WeightAverage(net, settings.weight_average_span) if settings.weight_average_span else None,
    )


def train_one_step(run: TrainingRun, fraction: float) -> None:
    if fraction >= run.settings.encoder_warmup_share and in_encoder_warmup(run.net):
        release_encoder(run.net)
    for group in run.optimiser.param_groups:
        group["lr"] = scheduled_learning_rate(run.settings, run.step, fraction)
    batch_x, batch_y = run.next_batch()
    run.losses.append(train_step(run.net, run.optimiser, run.scaler, run.precision, run.loss_fn, batch_x, batch_y, run.device))
    run.step += 1
    if run.average is not None:
        run.average.update(run.net)
    for observe in run.step_observers:
        observe(run.net)


def train_epoch(run: TrainingRun, epoch: int, progress: Progress, best: BestWeights, cancelled_path: Optional[Path]) -> None:
    """Up to one epoch of steps; ends early at the step limit or the time budget."""
    for _ in range(run.steps_per_epoch):
        if run.step >= run.total_steps:
            break
        if progress.cancelled():
            cancel_keeping_best(best.state or run.snapshot(), run.as_checkpoint, cancelled_path)
        elapsed = time.perf_counter() - run.started
        fraction = run.fraction_done(elapsed)
        if fraction >= 1.0:
            break
        train_one_step(run, fraction)
        progress.report(fraction, f"epoch {epoch + 1}, step {run.step}, loss {np.mean(run.losses[-20:]):.3f}, "
                        f"{time_left(elapsed, fraction)}")


def validate_epoch(run: TrainingRun, epoch: int, val_chips: List[LoadedChip], best: BestWeights) -> Dict[str, float]:
    """The epoch's record (training loss, and validation scores when there are validation chips)."""
    recent = run.losses[-run.steps_per_epoch:]
    record = {"epoch": epoch + 1, "step": run.step, "train_loss": float(np.mean(recent)) if run.losses else float("nan"),
              "elapsed_s": round(time.perf_counter() - run.started, 1)}
    if val_chips:
        with run.average.swapped_in(run.net) if run.average is not None else nullcontext():
            record.update(evaluate_pixels(run.net, val_chips, run.gsd_m, run.base.scaling, run.device, run.precision))
        best.update(record, run.snapshot)
    return record


def validation_due(run: TrainingRun, last_validation: float) -> bool:
    """After every epoch, or, with ``validate_every_s``, when that long has passed or the run
    is about to end: on small chip sets an epoch is a few steps, and scoring the validation
    chips after each would cost more than the training itself."""
    every = run.settings.validate_every_s
    if not every:
        return True
    now = time.perf_counter()
    ending = run.step >= run.total_steps or (run.budget_s is not None and now - run.started >= run.budget_s)
    return ending or now - last_validation >= every


def stop_reason(run: TrainingRun, best: BestWeights, validated: bool) -> Optional[str]:
    """Why the loop stops after this epoch, or None to go on."""
    out_of_time = run.budget_s is not None and time.perf_counter() - run.started >= run.budget_s
    if run.step >= run.total_steps:
        return "step limit"
    if out_of_time:
        return "time budget"
    if validated and best.patience_exhausted():
        return "early stopping"
    return None


def _format_record(record: Dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items())


def fit(
    base: Checkpoint,
    train_chips: List[LoadedChip],
    val_chips: List[LoadedChip],
    settings: TrainSettings,
    gsd_m: float,
    progress: Optional[Progress] = None,
    cancelled_path: Optional[Path] = None,
    started: Optional[float] = None,
    step_observers: Sequence[Callable[[Any], None]] = (),
) -> FitOutcome:
    """Train ``base`` on the chips; returns the best checkpoint (validation IoU) or the last.
    ``step_observers`` see the network after every step (experiments average weights with them)."""
    progress = progress or Progress()
    started = time.perf_counter() if started is None else started
    run = start_run(base, train_chips, settings, gsd_m, started, step_observers)
    best = BestWeights(patience=settings.patience)
    history: List[Dict[str, float]] = []
    stopped = "epochs done"
    last_validation = time.perf_counter()
    try:
        for epoch in range(settings.epochs):
            train_epoch(run, epoch, progress, best, cancelled_path)
            validate = bool(val_chips) and (validation_due(run, last_validation) or epoch == settings.epochs - 1)
            record = validate_epoch(run, epoch, val_chips if validate else [], best)
            last_validation = time.perf_counter() if validate else last_validation
            history.append(record)
            progress.report(min(1.0, run.step / run.total_steps), "epoch " + _format_record(record))
            reason = stop_reason(run, best, validate)
            if reason:
                stopped = reason
                break
    finally:
        run.close()
    if best.state is None:
        best.state, best.metrics = run.snapshot(), dict(history[-1]) if history else {}
    run.net.eval()
    return FitOutcome(run.as_checkpoint(best.state), history, best.metrics, run.step, time.perf_counter() - started, stopped,
                      run.settings.crop_size, run.precision.name,
                      int(run.settings.prefetch_workers or 1) if run.settings.prefetch else 0)


# --- One training run, from chip folders to a saved checkpoint ---------------------------------
def check_training_request(chip_folders: Sequence[Path], output_path: Path, settings: TrainSettings) -> None:
    """Fail on bad input before any slow step."""
    if output_path.suffix.lower() != ".pt":
        raise UserError(f"The output checkpoint must end in .pt (got {output_path.name}).")
    if output_path.exists() and output_path.is_dir():
        raise UserError(f"{output_path} is a folder; give a .pt file path for the new checkpoint.")
    if settings.epochs < 1 or not settings.learning_rate > 0:
        raise UserError("Epochs must be at least 1 and the learning rate above 0.")
    if settings.gsd_m is not None and not settings.gsd_m > 0:
        raise UserError(f"The working GSD must be above 0 m (got {settings.gsd_m:g}); leave it empty to take the chips' own.")
    if not chip_folders:
        raise UserError("Give at least one chip folder (export labels with `export-labels`).")
    for folder in chip_folders:
        read_manifest(Path(folder))  # a missing or empty folder fails before any slow step


MAX_GSD_RATIO = 10.0  # a 256 px chip at 10 m is 853 px at 3 m and 8533 px at 0.3 m: validation reads whole chips


def working_gsd(asked_m: Optional[float], chips_m: float) -> float:
    """The network's ground sample distance: the one asked for, else the chips' own; one more than
    ``MAX_GSD_RATIO`` times finer or coarser than the chips is refused (a typo such as 0.3 for 3)."""
    if asked_m is None:
        return float(chips_m)
    if not 1.0 / MAX_GSD_RATIO <= asked_m / chips_m <= MAX_GSD_RATIO:
        raise UserError(f"A working GSD of {asked_m:g} m is more than {MAX_GSD_RATIO:g}x the chips' {chips_m:g} m; "
                        f"give one between {chips_m / MAX_GSD_RATIO:g} and {chips_m * MAX_GSD_RATIO:g} m, or none.")
    return float(asked_m)


def calibrated_metrics(ckpt: Checkpoint, val_chips: List[LoadedChip], settings: TrainSettings, outcome: FitOutcome,
                       fixed_calibration: Optional[Tuple[float, float]], progress: Progress) -> Dict[str, Any]:
    """Set threshold and minimum area (fixed, or calibrated on the validation chips); the
    instance scores lead the metrics (and so the checkpoint's one-line summary), then the loop's own."""
    metrics: Dict[str, Any] = {}
    if fixed_calibration is not None:
        ckpt.threshold, ckpt.min_area_m2 = fixed_calibration
    elif settings.calibrate and val_chips:
        metrics.update(calibrate_on_chips(ckpt, val_chips[: settings.calibration_chips], settings.device, progress))
    for key, value in outcome.best_metrics.items():
        if isinstance(value, float) and key not in ("elapsed_s",):
            metrics.setdefault(key, round(value, 4))
    return metrics


def training_provenance(parent: str, chip_folders: Sequence[Path], chips: List[LoadedChip], n_train: int, n_val: int,
                        metrics: Dict[str, Any], settings: TrainSettings, outcome: FitOutcome, gsd_m: float,
                        started: float) -> Dict[str, Any]:
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "trained": True,
        "parent": parent,
        "training_data": [
            {"folder": str(Path(f).resolve()), "chips": sum(1 for c in chips if Path(c.folder) == Path(f))} for f in chip_folders
        ],
        "n_train_chips": n_train,
        "n_val_chips": n_val,
        "metrics": metrics,
        "recipe": dict(settings.to_dict(), steps=outcome.steps, stopped=outcome.stopped_because, gsd_m=gsd_m,
                       crop_size_used=outcome.crop_size, precision_used=outcome.precision,
                       batch_threads_used=outcome.batch_threads),
        "training_seconds": round(time.perf_counter() - started, 1),
    }


def train_model(
    chip_folders: Sequence[Path],
    output_path: Path,
    base_checkpoint: Optional[Path] = None,
    settings: Optional[TrainSettings] = None,
    progress: Optional[Progress] = None,
    from_imagenet: bool = False,
    name: Optional[str] = None,
    version: str = "1.0.0",
    fixed_calibration: Optional[Tuple[float, float]] = None,
    extra_provenance: Optional[Dict[str, Any]] = None,
) -> TrainResult:
    """Train (from ImageNet) or fine-tune (from a checkpoint, default bundled) and save."""
    started = time.perf_counter()
    settings = settings or fine_tune_settings()
    progress = progress or Progress()
    output_path = Path(output_path)
    check_training_request(chip_folders, output_path, settings)
    base, parent = starting_checkpoint(chip_folders, base_checkpoint, from_imagenet)
    chips = load_training_chips(chip_folders, base, progress.sub(0.0, 0.03))
    gsd = working_gsd(settings.gsd_m, median_gsd(chips))
    train_chips, val_chips = split_chips(chips, settings.val_share, settings.seed)
    outcome = fit(base, train_chips, val_chips, settings, gsd, progress.sub(0.03, 0.9), cancelled_best_path(output_path), started)
    ckpt = outcome.checkpoint
    metrics = calibrated_metrics(ckpt, val_chips, settings, outcome, fixed_calibration, progress.sub(0.9, 0.99))
    ckpt.name = name or f"{base.name.split('+')[0]}+finetuned"
    ckpt.version = version
    ckpt.provenance = {
        **training_provenance(parent, chip_folders, chips, len(train_chips), len(val_chips), metrics, settings, outcome, gsd, started),
        **(extra_provenance or {}),
    }
    save_checkpoint(ckpt, output_path)
    progress.report(1.0, f"saved {output_path.name}: " + ", ".join(f"{k} {v}" for k, v in list(metrics.items())[:6]))
    return TrainResult(output_path, ckpt, metrics, outcome.history, time.perf_counter() - started, len(train_chips), len(val_chips))


def fine_tune(
    chip_folders: Sequence[Path],
    output_path: Path,
    base_checkpoint: Optional[Path] = None,
    epochs: Optional[int] = None,
    learning_rate: Optional[float] = None,
    val_share: Optional[float] = None,
    max_minutes: Optional[float] = None,
    device: str = "auto",
    progress: Optional[Progress] = None,
    **overrides: Any,
) -> TrainResult:
    """The one fine-tuning entry point for the CLI, Processing and the dock."""
    settings = fine_tune_settings(
        epochs=epochs, learning_rate=learning_rate, val_share=val_share, max_minutes=max_minutes, device=device, **overrides
    )
    return train_model(chip_folders, output_path, base_checkpoint, settings, progress)
