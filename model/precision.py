"""Numeric precision and memory layout for training: make the CPU (or GPU) work for us.

On these machines (AMD EPYC with avx512_bf16) the network's forward and backward pass is
nearly all of a training step. The channels_last layout is what pays on the CPU. bfloat16
autocast (around the network only: loss and augmentation stay float32, which also avoids
numpy's "unsupported ScalarType BFloat16") is the CPU default where the CPU has bf16 kernels
(avx512_bf16 or AMX) since the 128-channel decoder: faster, and at equal wall clock it validated
better on every Arctic fold (docs/TRAINING.md); fp32 elsewhere. "bf16-decoder" (the decoder and
head alone in bf16) validated worse, so it is selectable, not the default.
On CUDA, float16 autocast with a gradient scaler (bfloat16 where the GPU supports it).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, ContextManager, Optional

from ..core.devices import cpu_flags

if TYPE_CHECKING:
    import torch

# bf16-decoder: the decoder and head under bf16 autocast, the encoder in fp32 (CPU; see choose_precision)
PRECISION_CHOICES = ("auto", "fp32", "bf16", "bf16-decoder", "fp16")


def cpu_has_bf16() -> bool:
    """True when the CPU runs bfloat16 matrix kernels natively (avx512_bf16 or AMX)."""
    try:
        import torch

        probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        if probe is not None and not probe():
            return False
    except (ImportError, RuntimeError, AttributeError):
        return False
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class Precision:
    """How one training run computes: device type, autocast dtype, memory layout."""

    device_type: str  # "cpu" or "cuda"
    name: str  # "fp32", "bf16" or "fp16"
    channels_last: bool

    @property
    def dtype(self) -> Optional["torch.dtype"]:
        import torch

        return {"bf16": torch.bfloat16, "bf16-decoder": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self) -> ContextManager:
        """Context for the network's forward pass only."""
        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def logits(self, net: "torch.nn.Module", x: "torch.Tensor") -> "torch.Tensor":
        """The network's forward pass under this precision. bf16-decoder runs the encoder in
        fp32 and only the decoder and head under autocast (smp's forward, split in two):
        the encoder's depthwise convolutions are slower in bf16 on this CPU, the decoder's
        dense convolutions faster (forward + backward at 256 px: 0.32 against 0.48-0.52 s)."""
        if self.name != "bf16-decoder":
            with self.autocast():
                return net(x)
        features = net.encoder(x)
        with self.autocast():
            return net.segmentation_head(net.decoder(features))

    def grad_scaler(self) -> Optional["torch.amp.GradScaler"]:
        """fp16 needs loss scaling against underflow; bf16 has fp32's exponent range and does not."""
        import torch

        return torch.amp.GradScaler("cuda") if self.name == "fp16" else None

    def prepare_network(self, net: "torch.nn.Module") -> "torch.nn.Module":
        import torch

        return net.to(memory_format=torch.channels_last) if self.channels_last else net

    def prepare_input(self, batch: "torch.Tensor") -> "torch.Tensor":
        import torch

        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch


def choose_precision(device: str, requested: str = "auto") -> Precision:
    """``auto``: bf16 on a CPU with bf16 kernels, else fp32 (measured, see below); bf16/fp16 on CUDA."""
    from ..core.errors import UserError

    requested = (requested or "auto").lower()
    if requested not in PRECISION_CHOICES:
        raise UserError(f"Unknown precision {requested!r}; use {', '.join(PRECISION_CHOICES)}.")
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    if device_type == "cuda":
        import torch

        if requested == "auto":
            requested = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return Precision("cuda", requested, channels_last=True)
    if requested == "fp16":
        raise UserError("fp16 training runs on CUDA only; on the CPU use bf16 or fp32.")
    if requested == "auto":
        # Measured on the 2-core AMD EPYC with avx512_bf16 (docs/TRAINING.md, quiet machine, one
        # process, 8 x 192 px): fp32 contiguous 1.29-1.42 s a step, bf16 + channels_last 0.93-1.15 s,
        # fp32 + channels_last 0.86 s, torch.compile 1.27 s. The whole network in bf16 loses: its
        # depthwise convolutions are bound by memory traffic, not by the matrix units bf16 speeds
        # up. The decoder alone in bf16 ("bf16-decoder") is 1.2x faster at 256 px, but in the
        # same 90 s from the bundled model it validated worse on both folds tried (pixel IoU
        # 0.166 / 0.148 against fp32's 0.232 / 0.264, docs/TRAINING.md).
        # Session 13 (2026-12-07), the same CPU family, the 128-channel decoder of v3.0.0 and the
        # dilated depthwise backward of model/fast_depthwise.py: the whole network in bf16 now
        # wins, 0.403 against 0.498 s a step at 192 px (BENCHMARKS.md), and in 3 minutes a fold
        # from ImageNet it validated higher on all four Arctic folds (pixel IoU 0.446 / 0.445 /
        # 0.237 / 0.346 against 0.400 / 0.401 / 0.203 / 0.306; 6 of 23 slumps either way). On an
        # Intel Xeon with AMX (session 8, 256-channel decoder) bf16 was faster and level. CPUs
        # without bf16 kernels emulate it slowly: fp32 there.
        requested = "bf16" if cpu_has_bf16() else "fp32"
    # channels_last is what oneDNN's convolution kernels want, in fp32 and bf16 alike.
    return Precision("cpu", requested, channels_last=True)
