"""The training recipe as one config dataclass, shared by the loop, its units and the front ends."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional

from .augment import AugmentSettings
from .fine_tune_defaults import TRAIN_SEED


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
    seed: int = TRAIN_SEED
    device: str = "auto"
    threads: Optional[int] = None
    gsd_m: Optional[float] = None  # default: the median GSD of the chips
    calibrate: bool = True  # tune threshold and minimum area on the validation chips
    calibration_chips: int = 80
    precision: str = "auto"  # auto: bf16 on a CPU with bf16 kernels, else fp32; bf16 or fp16 on CUDA (model/precision.py choose_precision)
    frozen_stages: int = 0  # encoder stem + this many first stages kept fixed (see freeze_early_stages)
    encoder_warmup_share: float = 0.0  # share of the run with the whole encoder fixed (see freeze_whole_encoder)
    validate_every_s: Optional[float] = None  # None: after every epoch; else at most this often (and at the end)
    prefetch: Optional[bool] = None  # batches from a background thread; None: where a core is free for it (prefetch_pays)
    prefetch_workers: Optional[int] = None  # batch threads when prefetching; None: by device and free cores (prefetch_workers)
    fast_depthwise_backward: bool = True  # CPU: the depthwise convolutions' faster backward (model/fast_depthwise.py)
    weight_average_span: float = 0.0  # > 0: validate and keep an average of the weights over about this share of the run
    loss: str = "bce_dice"  # see model/losses.py LOSSES
    positive_weight: float = 2.0  # the BCE term's weight on slump pixels (every loss has that term)
    augment: AugmentSettings = field(default_factory=AugmentSettings)

    def to_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out["augment"] = self.augment.to_dict()
        return out
