"""Run the network on batches of tiles: onnxruntime on the CPU, torch on CUDA.

onnxruntime was the fastest CPU backend measured on these 2-core machines (about 1.3x
torch with jit.freeze and 3x torch eager for DeepLabV3+), so "auto" uses it on the CPU
and torch (fp16 autocast) when a CUDA GPU is present. The ONNX graph is exported from
the checkpoint once and cached by the checkpoint's fingerprint.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from ..core.devices import NO_CUDA_MESSAGE, check_device, cuda_impossible, cuda_name
from ..core.errors import UserError
from .tiling import tile_batch

if TYPE_CHECKING:
    import onnxruntime as ort
    import torch

    from ..core.checkpoint import Checkpoint

BatchPredictor = Callable[[np.ndarray], np.ndarray]  # (N, C, H, W) float32 -> (N, H, W) probability
# Threads one detection may use on the CPU. Unset: all cores. A batch running several
# detections side by side on one machine sets it so they share the cores instead of
# oversubscribing them (engine/batch).
THREADS_ENV = "THAW_SLUMP_THREADS"
BACKEND_CHOICES = ("auto", "onnxruntime", "torch")


CPU_BATCH = 4  # 512 px tiles a call on the CPU (1 Mpx): larger batches were no faster there (BENCHMARKS.md)
CUDA_MAX_BATCH = 32
CUDA_BYTES_PER_TILE = 80 * 2**20  # measured on an H200 at 512 px, fp16: 339 MB peak at batch 4, 2590 MB at 32


class Predictor:
    """A callable over batches that knows what it runs on, and how many tiles a call suits it."""

    def __init__(self, run: BatchPredictor, backend: str, device_name: str, preferred_batch: int = CPU_BATCH) -> None:
        self._run = run
        self.backend = backend
        self.device_name = device_name
        self.preferred_batch = preferred_batch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch)


def detection_threads() -> int:
    """CPU threads for one detection: $THAW_SLUMP_THREADS when set, else every core."""
    try:
        return max(1, int(os.environ.get(THREADS_ENV, "")))
    except ValueError:
        return max(1, os.cpu_count() or 1)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "thaw_slump_mapper"


def make_predictor(
    ckpt: "Checkpoint", device: str = "auto", backend: str = "auto", tile_size: Optional[int] = None, precision: str = "fp32",
) -> Predictor:
    """A batch predictor for square tiles of ``tile_size`` (default: the checkpoint's).

    ``precision`` applies to onnxruntime on the CPU: "fp32", "int8" (engine/quantize.py) or
    "auto" (int8 on x86 CPUs with VNNI or AVX2 for a trained checkpoint, else fp32). fp32 is the default
    here (training's cross-validation, calibration); detection's default is "auto"."""
    from .quantize import PRECISION_CHOICES, resolve_precision

    tile_size = int(tile_size or ckpt.tile_size)
    if (precision or "auto").lower() not in PRECISION_CHOICES:
        raise UserError(f"Unknown precision {precision!r}; use auto, fp32 or int8.")
    # A light install runs the graph shipped beside the checkpoint; its int8 graph would need
    # torch to export, so "auto" stays fp32 there (an explicit int8 still asks for torch).
    shipped_graph = ckpt.onnx_path is not None and (precision or "auto").lower() == "auto"
    precision = "fp32" if shipped_graph else resolve_precision(precision, ckpt.trained)
    device = check_device(device)
    backend = (backend or "auto").lower()
    if backend not in BACKEND_CHOICES:
        raise UserError(f"Unknown backend {backend!r}; use auto, onnxruntime or torch.")
    gpu = None if cuda_impossible() else cuda_name()  # cuda_name imports torch (~480 MB)
    if device.startswith("cuda") and gpu is None:
        raise UserError(NO_CUDA_MESSAGE)
    if gpu is not None and device != "cpu" and backend != "onnxruntime":
        return _torch_predictor(ckpt, device if device.startswith("cuda") else "cuda", f"CUDA: {gpu}", tile_size)
    if backend in ("auto", "onnxruntime"):
        try:
            return _onnx_predictor(ckpt, tile_size, precision)
        except ImportError:
            if backend == "onnxruntime":
                raise UserError("onnxruntime is not installed; install it or use backend torch.") from None
    return _torch_predictor(ckpt, "cpu", "CPU", tile_size)


class _SigmoidHead:
    """Wraps the network so the exported graph returns probabilities (N, H, W)."""

    @staticmethod
    def wrap(net: "torch.nn.Module") -> "torch.nn.Module":
        import torch

        class Probabilities(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return torch.sigmoid(self.inner(x))[:, 0]

        return Probabilities(net).eval()


def cuda_batch_size(free_bytes: int, tile_size: int) -> int:
    """Tiles a call on the GPU: as many as half the free memory holds, up to CUDA_MAX_BATCH.
    On an H200 batch 32 ran the network 1.25x faster per tile than batch 4 (BENCHMARKS.md)."""
    per_tile = CUDA_BYTES_PER_TILE * (tile_size / 512) ** 2
    return int(max(1, min(CUDA_MAX_BATCH, free_bytes // 2 // max(1, int(per_tile)))))


def _torch_predictor(ckpt: "Checkpoint", device: str, device_name: str, tile_size: int) -> Predictor:
    import torch

    from ..core.checkpoint import build_network

    net = _SigmoidHead.wrap(build_network(ckpt)).to(device)
    use_cuda = device.startswith("cuda")
    if not use_cuda:
        net = net.to(memory_format=torch.channels_last)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
            if use_cuda:
                with torch.autocast("cuda", dtype=torch.float16):
                    y = net(x)
            else:
                y = net(x.contiguous(memory_format=torch.channels_last))
            return y.float().cpu().numpy()

    batch = tile_batch(tile_size, CPU_BATCH)
    if use_cuda:
        free_bytes, _ = torch.cuda.mem_get_info(torch.device(device))
        batch = cuda_batch_size(free_bytes, tile_size)
    return Predictor(run, "torch", device_name, batch)


def onnx_graph_file(ckpt: "Checkpoint", tile_size: int) -> Path:
    """Where the fp32 export of ``ckpt`` for ``tile_size`` is cached (it may not exist yet)."""
    return cache_dir() / "onnx" / f"{ckpt.name}-{ckpt.fingerprint()}-{tile_size}.onnx"


def onnx_model_path(ckpt: "Checkpoint", tile_size: int) -> Path:
    """Export the checkpoint to ONNX once per tile size; later runs reuse the cached file.

    The tile size is fixed in the graph because TF-style "same" padding in EfficientNet
    encoders is traced for one input size."""
    path = onnx_graph_file(ckpt, tile_size)
    if path.is_file():
        return path
    import torch

    from ..core.checkpoint import build_network

    path.parent.mkdir(parents=True, exist_ok=True)
    net = _SigmoidHead.wrap(build_network(ckpt))
    dummy = torch.zeros(1, len(ckpt.bands), tile_size, tile_size)
    tmp = path.with_name(path.name + f".{os.getpid()}.partial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (dummy,), str(tmp), dynamo=False, opset_version=17,
            input_names=["image"], output_names=["probability"],
            dynamic_axes={"image": {0: "batch"}, "probability": {0: "batch"}},
        )
    tmp.replace(path)
    return path


def onnx_session_options() -> "ort.SessionOptions":
    """onnxruntime's defaults, which measured fastest here, with the thread count pinned.

    An earlier version disabled spinning (session.intra_op.allow_spinning = 0) so that idle
    worker threads would leave the cores to reading and writing. On this network (many small
    depthwise convolutions) that makes every operator wake sleeping threads, and it was the
    main reason the engine's model-only figure ran a third below a plain session (issue 11).
    Spinning threads only spin between operators of one run, not between runs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = detection_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Without its arena onnxruntime returns activation buffers after each run: peak 876 MB
    # instead of 1098 MB after three 4 x 512 px batches (measured), and no growth later.
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3  # the int8 graph's "removing unused initializer" notes are not the user's business
    return options


def _onnx_predictor(ckpt: "Checkpoint", tile_size: int, precision: str = "fp32") -> Predictor:
    import onnxruntime as ort

    if precision == "int8":
        from .quantize import int8_model_path

        model = int8_model_path(ckpt, tile_size)
    else:
        # Light install (no torch): the graph shipped beside the checkpoint (engine/onnx_model.py).
        model = ckpt.onnx_path or onnx_model_path(ckpt, tile_size)
    session = ort.InferenceSession(str(model), onnx_session_options(), providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {"image": np.ascontiguousarray(batch, dtype=np.float32)})[0]

    return Predictor(run, "onnxruntime" if precision == "fp32" else f"onnxruntime {precision}", "CPU", tile_batch(tile_size, CPU_BATCH))
