"""Test-time augmentation: the average of the network on the eight rotations and mirrors of a tile."""
from __future__ import annotations

import numpy as np
import pytest

from thaw_slump_mapper.core.checkpoint import load_checkpoint
from thaw_slump_mapper.core.errors import UserError
from thaw_slump_mapper.engine.backends import make_predictor
from thaw_slump_mapper.engine.detect import DetectionRequest, run_detection
from thaw_slump_mapper.engine.tta import with_tta


def test_d4_is_the_mean_of_the_inverted_predictions(tiny_checkpoint):
    ckpt = load_checkpoint(tiny_checkpoint)
    plain = make_predictor(ckpt, device="cpu", backend="torch", tile_size=64)
    batch = np.random.default_rng(0).normal(size=(2, len(ckpt.bands), 64, 64)).astype(np.float32)
    expected = np.zeros((2, 64, 64), np.float32)
    for k in range(4):
        for mirror in (False, True):
            x = np.rot90(batch, k, axes=(-2, -1))
            x = x[..., ::-1] if mirror else x
            y = plain(np.ascontiguousarray(x))
            y = y[..., ::-1] if mirror else y
            expected += np.rot90(y, -k, axes=(-2, -1))
    np.testing.assert_allclose(with_tta(plain, "d4")(batch), expected / 8, atol=1e-5)
    flip2 = (plain(batch) + plain(np.ascontiguousarray(batch[..., ::-1]))[..., ::-1]) / 2
    np.testing.assert_allclose(with_tta(plain, "flip2")(batch), flip2, atol=1e-5)
    assert with_tta(plain, "none") is plain
    # an untrained network is not symmetric, so the averaging really changes the answer
    assert np.abs(with_tta(plain, "d4")(batch) - plain(batch)).max() > 1e-4


def test_detect_option(tiny_checkpoint, chip_paths, tmp_path):
    request = DetectionRequest(input_path=chip_paths[0], output_path=tmp_path / "tta.gpkg", checkpoint_path=tiny_checkpoint,
                               bands=[1, 2, 3], tta="flip2")
    result = run_detection(request)
    assert "TTA flip2" in result.device_name and (tmp_path / "tta.gpkg").exists()
    with pytest.raises(UserError, match="test-time augmentation"):
        run_detection(DetectionRequest(input_path=chip_paths[0], output_path=tmp_path / "x.gpkg",
                                       checkpoint_path=tiny_checkpoint, tta="d8"))
    assert not (tmp_path / "x.gpkg").exists()
