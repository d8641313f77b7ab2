"""The one device list and resolver shared by detection, training and every front end, so
the CLI, Processing and the dock offer the same choices and say the same thing."""
from __future__ import annotations

from functools import lru_cache
from typing import FrozenSet, Optional

from .errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
NO_CUDA_MESSAGE = "CUDA was requested but no CUDA GPU is available; use device auto or cpu."


@lru_cache(maxsize=1)
def cpu_flags() -> FrozenSet[str]:
    """The CPU's instruction-set flags from /proc/cpuinfo (x86 Linux); empty where it has none."""
    from pathlib import Path

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def cuda_impossible() -> bool:
    """True where no CUDA GPU can be present, known without importing torch (~480 MB):
    Linux without the NVIDIA kernel driver. Elsewhere only torch can tell (False)."""
    import sys
    from pathlib import Path

    return sys.platform.startswith("linux") and not Path("/proc/driver/nvidia/version").exists()


def cuda_name() -> Optional[str]:
    """The first CUDA GPU's name, or None without one (or without torch)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def check_device(device: Optional[str]) -> str:
    """The choice in lower case ('auto' when empty); an unknown one is a UserError."""
    device = (device or "auto").lower()
    if not (device in DEVICE_CHOICES or device.startswith("cuda:")):
        raise UserError(f"Unknown device {device!r}; use auto, cpu or cuda.")
    return device


def resolve_device(device: Optional[str] = "auto") -> str:
    """'cpu', 'cuda' or 'cuda:N' to run on: 'auto' takes CUDA when present; CUDA asked for
    on a machine without it is a UserError."""
    device = check_device(device)
    if device == "cpu":
        return device
    has_cuda = cuda_name() is not None
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise UserError(NO_CUDA_MESSAGE)
    return device


def describe_device(device: str = "auto") -> str:
    """What 'auto' (or an explicit choice) runs on: 'CUDA: <GPU name>' or 'CPU'."""
    if device.startswith("cuda") or device == "auto":
        name = cuda_name()
        if name:
            return f"CUDA: {name}"
        if device.startswith("cuda"):
            return "CUDA requested, but no CUDA GPU is available"
    return "CPU"
