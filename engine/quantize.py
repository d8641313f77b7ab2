"""An int8 ONNX graph of the checkpoint for x86 CPUs with VNNI (8-bit dot products) or AVX2.

Static quantisation with onnxruntime's tools, QDQ format: weights int8 per output channel,
activations uint8 with ranges calibrated (min/max) on real imagery, the bundled demo scene
(real ARTS chip imagery shipped with the plugin), scaled exactly as detection scales its
input and shown in flips and rotations. onnxruntime fuses the QDQ pairs into integer
convolutions, which run on VNNI (avx512_vnni / avx_vnni) at several times the fp32 rate, and
on AVX2 alone at 1.5x (with 7-bit weights there, see int8_model_path).
The graph is built once per checkpoint fingerprint and tile size and cached beside the fp32
export. tests/engine/test_int8_parity.py bounds the difference from fp32 on the real chips.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, List

import numpy as np

from ..core.devices import cpu_flags
from ..core.errors import UserError
from ..core.file_names import DEMO_SCENE

if TYPE_CHECKING:
    from ..core.checkpoint import Checkpoint

PRECISION_CHOICES = ("auto", "fp32", "int8")
CALIBRATION_VIEWS = 8
# v2: the segmentation head's convolution quantised too (_float_nodes).
INT8_RECIPE = "v2"
# int8 activation ranges come from the bundled real scene; where it is absent (the plugin zip
# leaves demo/ out) "auto" stays fp32 and an explicit int8 request says why it cannot run.
CALIBRATION_SCENE = DEMO_SCENE


def cpu_has_vnni() -> bool:
    """True on x86 CPUs whose flags list an 8-bit dot-product extension."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_runs_int8() -> bool:
    """x86 CPUs on which onnxruntime's int8 convolutions pay: with VNNI (1.9x fp32, 8-bit
    weights) or with AVX2 alone (1.5x fp32 on an AVX2-only EPYC, 7-bit weights; BENCHMARKS.md)."""
    return cpu_has_vnni() or "avx2" in cpu_flags()


def resolve_precision(precision: str, trained: bool = True) -> str:
    """"auto" (the detection default) is int8 where the CPU makes it pay, fp32 elsewhere.

    An untrained checkpoint stays fp32 under "auto": int8 parity is proven on trained
    weights (tests/engine/test_int8_parity.py), and calibrating random weights only costs time."""
    precision = (precision or "auto").lower()
    if precision == "auto":
        return "int8" if cpu_runs_int8() and trained and CALIBRATION_SCENE.is_file() else "fp32"
    return precision


def calibration_batches(ckpt: "Checkpoint", tile_size: int) -> List[np.ndarray]:
    """(1, C, tile, tile) float32 inputs: the demo scene scaled as detection scales it,
    reflected to the tile size, in CALIBRATION_VIEWS flips and rotations."""
    import rasterio

    from ..core.scaling import apply_scaling, compute_stretch, valid_pixels

    if not CALIBRATION_SCENE.is_file():
        raise UserError(
            f"int8 inference calibrates on {CALIBRATION_SCENE.name}, which this installation lacks "
            "(a git checkout has it in demo/); run with precision fp32 or auto."
        )
    with rasterio.open(CALIBRATION_SCENE) as src:
        data = src.read(list(range(1, len(ckpt.bands) + 1))).astype(np.float32)
    valid = valid_pixels(data, 0)
    stretch = compute_stretch(data, valid, ckpt.scaling)
    scaled = apply_scaling(data, valid, stretch, ckpt.scaling)
    reps = -(-tile_size // scaled.shape[1]) + 1, -(-tile_size // scaled.shape[2]) + 1
    big = np.pad(scaled, ((0, 0), (0, scaled.shape[1] * (reps[0] - 1)), (0, scaled.shape[2] * (reps[1] - 1))), mode="symmetric")
    views = []
    for k in range(CALIBRATION_VIEWS):
        view = np.rot90(big, k % 4, axes=(1, 2))
        view = view[:, ::-1] if k >= 4 else view
        views.append(np.ascontiguousarray(view[:, :tile_size, :tile_size])[None].astype(np.float32))
    return views


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of inputs."""

    def __init__(self, batches: List[np.ndarray]) -> None:
        self._items: Iterator[np.ndarray] = iter(batches)

    def get_next(self):
        batch = next(self._items, None)
        return None if batch is None else {"image": batch}


def int8_graph_file(ckpt: "Checkpoint", tile_size: int) -> Path:
    """Where the int8 graph of ``ckpt`` for ``tile_size`` is cached (it may not exist yet)."""
    from .backends import onnx_graph_file

    fp32 = onnx_graph_file(ckpt, tile_size)
    # The recipe's version is in the name, so that a cache made by an older release is not reused.
    return fp32.with_name(fp32.stem + f"-int8-{INT8_RECIPE}" + ("" if cpu_has_vnni() else "-7bit") + ".onnx")


def int8_model_path(ckpt: "Checkpoint", tile_size: int) -> Path:
    """The cached int8 graph, quantised from the fp32 export on first use.

    Without VNNI, onnxruntime's x86 int8 convolutions multiply uint8 activations by int8
    weights with VPMADDUBSW, whose 16-bit pair sums saturate; there the weights keep 7 bits
    (reduce_range). Measured on an AVX2-only EPYC against fp32 on the 16 real chips: 8-bit
    weights mean |dp| 0.048, decision flips 4.8 %, polygons F1 0.71 against fp32's; 7-bit 0.037,
    3.5 %, 0.80, at the same speed (1.5x fp32); uint8 weights were 3.5x slower than fp32."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from .backends import onnx_model_path

    path = int8_graph_file(ckpt, tile_size)
    if path.is_file():
        return path
    fp32 = onnx_model_path(ckpt, tile_size)
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # the quantiser's graph warnings are not the user's business
    reader = type("Reader", (_Reader, CalibrationDataReader), {})(calibration_batches(ckpt, tile_size))
    tmp = path.with_name(path.name + f".{os.getpid()}.partial")
    quantize_static(
        str(fp32), str(tmp), reader, quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=not cpu_has_vnni(),
        nodes_to_exclude=_float_nodes(fp32),
    )
    tmp.replace(path)
    for leftover in path.parent.glob("*augmented*.onnx"):
        leftover.unlink(missing_ok=True)
    return path


def _float_nodes(fp32: Path) -> List[str]:
    """Nodes kept in float: the first convolution (it sees the raw scaled bands, whose range no
    8-bit grid fits well: quantised, the 16 real chips lost one of fp32's polygons), and the
    upsampling and sigmoid after the last convolution (a probability in 1/255 steps would only
    add error where the threshold acts).

    The segmentation head's convolution is quantised. In float it cost a transpose, a
    dequantisation and a layout reorder of its 256-channel input (v2.0.0; 128 from v3.0.0) at 1/4 resolution, 10 of
    69 ms a 512 px tile on an AVX2-only EPYC (onnxruntime's profiler). Quantised, on the 16
    real chips against fp32: mean |dp| 0.0370 against 0.0368, decision flips 3.53 % against
    3.52 %, the same 19 polygons; 15 % faster a tile (62.7 against 74.3 ms, alternating rounds).
    The decoder's inner upsampling is quantised too (uint8 Resize), 1-2 % faster."""
    import onnx

    nodes = list(onnx.load(str(fp32), load_external_data=False).graph.node)
    convs = [i for i, node in enumerate(nodes) if node.op_type == "Conv"]
    head = [node.name for node in nodes[convs[-1] + 1:] if node.op_type in ("Sigmoid", "Resize")]
    return [nodes[convs[0]].name] + head
