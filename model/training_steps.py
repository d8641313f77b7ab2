"""The small units of the training loop: seeding, batches, one optimiser step, the learning
rate at a point of the schedule, and the per-epoch validation (no QGIS, no Qt)."""
from __future__ import annotations

import math
import random
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..core.checkpoint import Checkpoint, build_network
from ..core.chip_format import MASK_IGNORE, MASK_SLUMP, LoadedChip
from .augment import normalise, pad_to, render_chip, training_sample
from .fast_depthwise import use_fast_depthwise_backward
from .losses import bce_dice_loss
from .precision import Precision, choose_precision
from .training_settings import TrainSettings

Batch = Tuple[np.ndarray, np.ndarray]
FROZEN_ATTRIBUTE = "_thaw_slump_frozen"
NETWORK_STRIDE = 32  # DeepLabV3+ input sides must be multiples of this


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def evaluate_pixels(net, chips: List[LoadedChip], gsd: float, scaling: Dict[str, Any], device: str,
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
            view = pad_to(view, _stride_multiple(h), _stride_multiple(w), MASK_IGNORE)
            x, y = normalise(view, scaling)
            logits = precision.logits(net, precision.prepare_input(torch.from_numpy(x)[None].to(device))).float()
            yt = torch.from_numpy(y.astype(np.int64))[None].to(device)
            losses.append(float(bce_dice_loss(logits, yt)))
            pred = (logits[0, 0] > 0).cpu().numpy()
            keep = y != MASK_IGNORE
            truth = y == MASK_SLUMP
            inter += int((pred & truth & keep).sum())
            union += int(((pred | truth) & keep).sum())
    train_mode(net)
    return {"val_loss": float(np.mean(losses)) if losses else float("nan"), "val_pixel_iou": inter / union if union else 0.0}


def _stride_multiple(side: int) -> int:
    return int(math.ceil(side / NETWORK_STRIDE) * NETWORK_STRIDE)


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


def training_network(base: Checkpoint, settings: TrainSettings, precision: Precision, device: str = "cpu") -> Any:
    """The base checkpoint's network as training runs it: on ``device`` in the precision's
    layout, the recipe's early encoder stages fixed, and on the CPU the fast depthwise backward
    where the recipe asks for it (model/fast_depthwise.py)."""
    net = precision.prepare_network(build_network(base).to(device))
    freeze_early_stages(net, settings.frozen_stages)
    if device == "cpu" and settings.fast_depthwise_backward:
        use_fast_depthwise_backward(net)
    return net


ENCODER_WARMUP_ATTRIBUTE = "_thaw_slump_encoder_warmup"


def freeze_whole_encoder(net, compiled: bool = True) -> int:
    """Fix every encoder weight for the warm-up phase; returns the parameters held.

    The decoder and head first learn on the encoder's features as they are (the bundled
    model's, or ImageNet's). With no encoder weight to train, autograd keeps no encoder
    activations and runs no encoder backward: a warm-up step costs a fraction of a full one
    (BENCHMARKS.md, `make bench-train`), and the features are not disturbed by the large
    gradients of a decoder that has not adapted yet. ``release_encoder`` ends the phase."""
    encoder = getattr(net, "encoder", None)
    if encoder is None:
        return 0
    held = 0
    for parameter in encoder.parameters():
        if parameter.requires_grad:
            parameter.requires_grad_(False)
            setattr(parameter, ENCODER_WARMUP_ATTRIBUTE, True)
            held += parameter.numel()
    setattr(encoder, ENCODER_WARMUP_ATTRIBUTE, True)
    encoder.eval()
    if compiled and next(encoder.parameters()).device.type == "cpu":
        # instance attribute: shadows the class's forward without registering a module, so the
        # state dict (snapshots, a cancel's best model) keeps the encoder's own weights
        object.__setattr__(encoder, "forward", FrozenEncoderForward(encoder))
    return held


class FrozenEncoderForward:
    """The fixed encoder's forward as a traced, frozen TorchScript graph (batch norms folded
    into the convolutions, fused kernels): 1.6-2.7x eager on this CPU, with the same features
    to 1e-4. One graph per input shape (training batches have one); other shapes, and any
    shape after the first few, run the eager forward."""

    MAX_SHAPES = 2

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.graphs: Dict[Tuple[int, ...], Any] = {}
        self.traceable = True

    def __call__(self, x):
        import torch

        eager = type(self.encoder).forward
        with torch.no_grad():
            key = tuple(x.shape)
            graph = self.graphs.get(key)
            if graph is None and self.traceable and len(self.graphs) < self.MAX_SHAPES:
                try:
                    with warnings.catch_warnings():
                        # torch 2.14 marks TorchScript deprecated in favour of torch.compile, which took
                        # about 150 s to compile this network on 2 cores (docs/TRAINING.md): more than
                        # the warm-up it would speed up. The pinned torch still runs the traced graph.
                        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated.*")
                        graph = torch.jit.freeze(torch.jit.trace(_traceable_encoder(self.encoder, eager), x, check_trace=False))
                except (RuntimeError, TypeError):  # an encoder tracing cannot follow keeps its eager forward
                    self.traceable = False
                    graph = None
                if graph is not None:
                    self.graphs[key] = graph
            return list(graph(x)) if graph is not None else eager(self.encoder, x)


def _traceable_encoder(encoder, eager: Callable) -> Any:
    """A module whose forward is the encoder's class forward (not the instance's, which is the
    traced graph itself), returning a tuple as tracing wants."""
    import torch

    class EncoderFeatures(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, x):
            return tuple(eager(self.encoder, x))

    return EncoderFeatures().eval()


def release_encoder(net) -> int:
    """End the warm-up: the encoder weights held by ``freeze_whole_encoder`` train again
    (stages fixed by ``freeze_early_stages`` stay fixed); returns the parameters released."""
    encoder = getattr(net, "encoder", None)
    if encoder is None or not getattr(encoder, ENCODER_WARMUP_ATTRIBUTE, False):
        return 0
    released = 0
    for parameter in encoder.parameters():
        if getattr(parameter, ENCODER_WARMUP_ATTRIBUTE, False):
            parameter.requires_grad_(True)
            delattr(parameter, ENCODER_WARMUP_ATTRIBUTE)
            released += parameter.numel()
    setattr(encoder, ENCODER_WARMUP_ATTRIBUTE, False)
    encoder.__dict__.pop("forward", None)  # the class's eager forward again
    train_mode(net)
    return released


def in_encoder_warmup(net) -> bool:
    return bool(getattr(getattr(net, "encoder", None), ENCODER_WARMUP_ATTRIBUTE, False))


def train_mode(net) -> None:
    """``net.train()``, except for frozen stages, which stay in eval mode."""
    net.train()
    for module in net.modules():
        if getattr(module, FROZEN_ATTRIBUTE, False) or getattr(module, ENCODER_WARMUP_ATTRIBUTE, False):
            module.eval()


def effective_crop_size(chips: List[LoadedChip], gsd_m: float, settings: TrainSettings) -> int:
    """The crop size, but no larger than the biggest chip at the model's GSD (after scale
    jitter), rounded up to the network's stride of 32: a crop that is mostly padding costs
    compute and teaches nothing (Arctic 2 m chips seen at 10 m are about 51 px)."""
    largest = max(max(c.mask.shape) * c.gsd / gsd_m for c in chips) * (1.0 + settings.augment.scale_jitter)
    return int(max(64, min(settings.crop_size, _stride_multiple(largest))))


def batch_maker(chips: List[LoadedChip], gsd_m: float, scaling: Dict[str, Any], settings: TrainSettings,
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


def train_step(net, optimiser, scaler, precision: Precision, loss_fn: Callable, batch_x: np.ndarray,
               batch_y: np.ndarray, device: str) -> float:
    """One optimiser step; only the network runs under autocast, the loss stays float32."""
    import torch

    xb = precision.prepare_input(torch.from_numpy(batch_x).to(device))
    yb = torch.from_numpy(batch_y).to(device)
    logits = precision.logits(net, xb)
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


def scheduled_learning_rate(settings: TrainSettings, step: int, fraction: float) -> float:
    """Linear warm-up over the first steps, then a cosine decay over the run's fraction done."""
    warm = min(1.0, (step + 1) / max(1, settings.warmup_steps))
    return settings.learning_rate * warm * 0.5 * (1.0 + math.cos(math.pi * fraction))


def time_left(elapsed_s: float, fraction: float) -> str:
    if fraction <= 0.01:
        return "estimating time left"
    return f"about {max(0.0, elapsed_s / fraction - elapsed_s) / 60:.0f} min left"
