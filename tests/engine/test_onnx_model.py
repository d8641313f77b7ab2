"""The shipped ONNX graph is the bundled checkpoint's: same description, made from the same
weights (fingerprint), and it predicts what the float32 export predicts on a real chip."""
from __future__ import annotations

import numpy as np
import rasterio

from thaw_slump_mapper.core.checkpoint import bundled_checkpoint_path, load_checkpoint
from thaw_slump_mapper.engine.inference import predict_array
from thaw_slump_mapper.engine.onnx_model import SOURCE_FINGERPRINT_KEY, load_onnx_checkpoint, read_description, shipped_onnx_path


def test_shipped_graph_belongs_to_the_bundled_checkpoint():
    import onnxruntime as ort

    full = load_checkpoint(bundled_checkpoint_path())
    graph = shipped_onnx_path(bundled_checkpoint_path())
    assert graph.is_file() and graph.stat().st_size < 10_000_000, "float16-stored weights keep the zip under 25 MB"
    assert read_description(graph) == full.describe_dict(), "run `make onnx-model` after changing the checkpoint"
    meta = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert meta[SOURCE_FINGERPRINT_KEY] == full.fingerprint(), "run `make onnx-model` after changing the checkpoint"


def test_shipped_graph_predicts_like_the_float32_export(chip_paths):
    full = load_checkpoint(bundled_checkpoint_path())
    light = load_onnx_checkpoint(bundled_checkpoint_path())
    assert light.onnx_path is not None and not light.state_dict
    with rasterio.open(chip_paths[3]) as src:
        image = src.read([1, 2, 3]).astype(np.float32)
    image[~np.isfinite(image)] = 0
    a = predict_array(full, image, backend="onnxruntime", device="cpu")
    b = predict_array(light, image, backend="onnxruntime", device="cpu")
    assert float(np.abs(a - b).max()) < 0.05  # measured 0.015 over 17 real images (make onnx-parity)
    assert np.mean((a >= 0.5) != (b >= 0.5)) < 0.001
