"""Tiled prediction equals a single pass away from the outer edge: no seams."""
import numpy as np
import pytest

from thaw_slump_mapper.core.checkpoint import load_checkpoint
from thaw_slump_mapper.engine.backends import make_predictor
from thaw_slump_mapper.engine.inference import predict_array
from thaw_slump_mapper.engine.tiling import blend_window, tile_starts

from ..engine_helpers import chip_rgb


def test_tile_starts_cover_the_whole_length():
    for length in (1, 100, 128, 129, 500, 1000):
        starts = tile_starts(length, 128, 96)
        assert starts[0] == 0 and starts[-1] + 128 >= length
        assert all(b - a == 96 for a, b in zip(starts, starts[1:]))


def test_blend_window_is_one_inside_and_tapers():
    w = blend_window(128, 32)
    assert w[64, 64] == pytest.approx(1.0)
    assert w[0, 64] < 0.01 and w[16, 64] == pytest.approx(0.5, abs=0.05)
    assert np.allclose(w, w.T)


def test_tiled_equals_single_pass_away_from_edges(tiny_checkpoint, chip_paths):
    ckpt = load_checkpoint(tiny_checkpoint)
    image, _, _ = chip_rgb(chip_paths[1])
    image = np.nan_to_num(image, nan=0.0, neginf=0.0)
    valid = np.ones(image.shape[1:], bool)
    torch_predictor = make_predictor(ckpt, "cpu", "torch")
    single = predict_array(ckpt, image, valid, predictor=torch_predictor, tile_size=256, overlap=0)
    tiled = predict_array(ckpt, image, valid, predictor=torch_predictor, tile_size=96, overlap=48)
    inner = (slice(24, -24), slice(24, -24))
    diff = np.abs(single[inner] - tiled[inner])
    # The tiny U-Net sees ~40 px of context, so blended tiles match the single pass closely;
    # a seam (unweighted stitching) would show up as a line of large differences.
    spread = single[inner].std()
    assert diff.max() < 0.1 * spread, (diff.max(), spread)
    naive = predict_array(ckpt, image, valid, predictor=torch_predictor, tile_size=96, overlap=0)
    naive_diff = np.abs(single[inner] - naive[inner]).max()
    assert naive_diff > 1.0 * spread, "plain stitching should show seams, else this test proves nothing"
    assert naive_diff > 20 * diff.max()


def test_onnxruntime_matches_torch(tiny_checkpoint, chip_paths):
    ckpt = load_checkpoint(tiny_checkpoint)
    image, _, _ = chip_rgb(chip_paths[0])
    image = np.nan_to_num(image, nan=0.0, neginf=0.0)
    a = predict_array(ckpt, image, backend="torch", device="cpu")
    b = predict_array(ckpt, image, backend="onnxruntime", device="cpu")
    assert np.abs(a - b).max() < 1e-3
