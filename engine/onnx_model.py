"""The bundled model as a self-describing ONNX graph: CPU detection with onnxruntime alone.

A light install (onnxruntime, rasterio, numpy, shapely; no torch) cannot read a torch .pt
file, so the graph is shipped beside the checkpoint (`<name>.onnx`, written by
`make onnx-model`) with the checkpoint's description (bands, scaling, GSD, tiling,
provenance) in the graph's metadata. Its weights are stored as float16 and cast to float32
inside the graph: onnxruntime folds the casts when the session starts, so the arithmetic is
float32 while the file is half the size (the plugin zip must stay under 25 MB). Height and
width are dynamic: every tile size the engine picks (multiples of 32) gives the same
TF-"same" padding, so one graph serves them all.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Optional

from ..core.checkpoint import FULL_INSTALL_HINT, load_checkpoint, require_checkpoint_file, torch_available
from ..core.errors import UserError

if TYPE_CHECKING:
    from ..core.checkpoint import Checkpoint

DESCRIPTION_KEY = "thaw_slump_mapper.checkpoint"
SOURCE_FINGERPRINT_KEY = "thaw_slump_mapper.source_fingerprint"
OPSET = 17


def load_detection_checkpoint(path: Path | str) -> "Checkpoint":
    """The checkpoint for detection: the torch file when torch is installed, otherwise (the
    light install) its description and graph from the <name>.onnx beside it."""
    if torch_available():
        return load_checkpoint(path)
    return load_onnx_checkpoint(require_checkpoint_file(path))


def shipped_onnx_path(checkpoint_path: Path) -> Path:
    return Path(checkpoint_path).with_suffix(".onnx")


def load_onnx_checkpoint(checkpoint_path: Path) -> "Checkpoint":
    """The checkpoint's description from the ONNX graph beside it, for torch-free detection.
    The returned Checkpoint has no torch weights; its onnx_path is what onnxruntime runs."""
    from ..core.checkpoint import checkpoint_from_description

    checkpoint_path = Path(checkpoint_path)
    onnx_path = shipped_onnx_path(checkpoint_path)
    if not onnx_path.is_file():
        raise UserError(
            f"Checkpoint {checkpoint_path.name} needs torch to be read (no {onnx_path.name} beside it for onnxruntime); "
            f"{FULL_INSTALL_HINT}."
        )
    return checkpoint_from_description(read_description(onnx_path), onnx_path.name, checkpoint_path, onnx_path=onnx_path)


def read_description(onnx_path: Path) -> Dict:
    """The checkpoint description stored in the graph's metadata (read through onnxruntime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("Detection on the CPU needs the Python package onnxruntime; install it from the dock.") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        text = session.get_modelmeta().custom_metadata_map.get(DESCRIPTION_KEY)
    except Exception as err:  # onnxruntime raises its own exception types for unreadable files
        raise UserError(f"{onnx_path.name} is not a readable ONNX model ({str(err).splitlines()[0][:120]}); run `make onnx-model`.") from None
    if not text:
        raise UserError(f"{onnx_path.name} carries no thaw slump checkpoint description; rebuild it with `make onnx-model`.")
    return json.loads(text)


def export_onnx(checkpoint_path: Path, onnx_path: Optional[Path] = None, tile_size: Optional[int] = None) -> Path:
    """Write the self-describing float16-stored graph of a .pt checkpoint (needs torch and onnx)."""
    import onnx
    import torch

    from ..core.checkpoint import build_network
    from .backends import _SigmoidHead

    ckpt = load_checkpoint(checkpoint_path)
    onnx_path = Path(onnx_path or shipped_onnx_path(checkpoint_path))
    size = int(tile_size or ckpt.tile_size)
    net = _SigmoidHead.wrap(build_network(ckpt))
    partial = onnx_path.with_name(onnx_path.name + f".{os.getpid()}.partial")
    torch.onnx.export(
        net, (torch.zeros(1, len(ckpt.bands), size, size),), str(partial), dynamo=False, opset_version=OPSET,
        input_names=["image"], output_names=["probability"],
        dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "probability": {0: "batch", 1: "height", 2: "width"}},
    )
    graph = onnx.load(str(partial))
    store_weights_as_float16(graph)
    for key, value in ((DESCRIPTION_KEY, json.dumps(ckpt.describe_dict())), (SOURCE_FINGERPRINT_KEY, ckpt.fingerprint())):
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(partial))
    partial.replace(onnx_path)
    return onnx_path


def store_weights_as_float16(graph) -> None:
    """Each float32 weight becomes a float16 initializer followed by a Cast back to float32."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    casts = []
    for initializer in graph.graph.initializer:
        if initializer.data_type != onnx.TensorProto.FLOAT or len(initializer.dims) == 0:
            continue
        values = numpy_helper.to_array(initializer)
        if values.size < 16 or np.abs(values).max() > 65000:  # tiny or out of float16 range: keep
            continue
        name = initializer.name
        initializer.CopyFrom(numpy_helper.from_array(values.astype(np.float16), f"{name}__fp16"))
        casts.append(helper.make_node("Cast", [f"{name}__fp16"], [name], to=onnx.TensorProto.FLOAT, name=f"{name}__to_fp32"))
    # Casts first, so the graph stays topologically sorted.
    nodes = list(graph.graph.node)
    del graph.graph.node[:]
    graph.graph.node.extend(casts + nodes)
