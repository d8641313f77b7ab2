"""Large chips rendered in a native window: the view still covers the crop, image and mask stay
aligned, every part of the chip is reachable, and the stretch is the whole chip's."""
from __future__ import annotations

import numpy as np

from thaw_slump_mapper.core.chip_format import LoadedChip
from thaw_slump_mapper.core.scaling import default_scaling
from thaw_slump_mapper.model.augment import AugmentSettings, native_window, random_crop, render_chip

SCALING = default_scaling(["red", "green", "blue"])
NO_PHOTOMETRY = dict(scale_jitter=0.2, degrade_prob=0.0, blur_prob=0.0, colour_jitter=0.0, noise_std=0.0, nodata_prob=0.0)


def _chip_with_blocks(size: int = 240, gsd: float = 10.0) -> LoadedChip:
    """Slump blocks of 20 x 20 native pixels on a checkerboard; slump pixels are bright."""
    yy, xx = np.mgrid[0:size, 0:size]
    mask = (((yy // 20) + (xx // 20)) % 2 == 0).astype(np.uint8)
    image = np.stack([100.0 + 1000.0 * mask + 10.0 * b for b in range(3)]).astype(np.float32)
    return LoadedChip("blocks", image, np.ones((size, size), bool), mask, gsd, "train", "generated")


def _eroded(mask: np.ndarray, r: int) -> np.ndarray:
    """Pixels whose (2r+1)-square neighbourhood lies inside ``mask`` and inside the view."""
    padded = np.pad(mask, r, constant_values=False)
    h, w = mask.shape
    out = np.ones_like(mask)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out &= padded[dy:dy + h, dx:dx + w]
    return out


def test_window_covers_the_crop_and_reaches_the_whole_chip():
    chip = _chip_with_blocks()
    size = chip.mask.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    chip.image = np.stack([yy, xx, yy + xx])  # each pixel says where it is
    rng = np.random.default_rng(0)
    tops, lefts = [], []
    for _ in range(300):
        window = native_window(chip, 10.0 / 3.0, 256, rng)
        assert window is not None and min(window.mask.shape) * 10.0 / 3.0 >= 256
        top, left = int(window.image[0, 0, 0]), int(window.image[1, 0, 0])
        assert np.array_equal(window.mask, chip.mask[top:top + window.mask.shape[0], left:left + window.mask.shape[1]])
        tops.append(top)
        lefts.append(left)
    last = size - window.mask.shape[0]
    assert min(tops) <= 10 and max(tops) >= last - 10 and min(lefts) <= 10 and max(lefts) >= last - 10
    assert native_window(chip, 10.0 / 3.0, 600, rng) is None  # most of the chip: render it whole


def test_windowed_view_keeps_image_and_mask_aligned_and_the_whole_chip_stretch():
    chip = _chip_with_blocks()
    aug = AugmentSettings(render_window=True, **NO_PHOTOMETRY)
    whole = AugmentSettings(render_window=False, **NO_PHOTOMETRY)
    rng = np.random.default_rng(2)
    for _ in range(20):
        view = random_crop(render_chip(chip, 3.0, SCALING, rng, aug, photometric=False, crop=256), 256, rng)
        assert view.image.shape == (3, 256, 256)
        slump, ground = view.mask == 1, view.mask == 0
        assert slump.any() and ground.any()
        # aligned: bright exactly under the slump label, away from the resampled block edges
        inner_slump, inner_ground = _eroded(slump, 3), _eroded(ground, 3)
        assert view.image[0][inner_slump].min() > 0.9 and view.image[0][inner_ground].max() < 0.1
    # the stretch is the whole chip's: a window with no slump in it still shows its ground as dark
    dark_corner = chip.image.copy()
    # ground with a little texture: a stretch from such a window alone would spread it over 0..1
    dark_corner[:, :120, :120] = 100.0 + np.random.default_rng(4).uniform(0.0, 20.0, (3, 120, 120))
    mask = chip.mask.copy()
    mask[:120, :120] = 0
    chip = LoadedChip("corner", dark_corner, chip.valid, mask, chip.gsd, "train", "generated")
    seen_ground_only = 0
    for _ in range(60):
        view = random_crop(render_chip(chip, 3.0, SCALING, rng, aug, photometric=False, crop=256), 256, rng)
        if not (view.mask == 1).any():
            seen_ground_only += 1
            assert view.image[0].max() < 0.1
    assert seen_ground_only > 0
    windowed = render_chip(chip, 3.0, SCALING, np.random.default_rng(3), aug, photometric=False, crop=256)
    full = render_chip(chip, 3.0, SCALING, np.random.default_rng(3), whole, photometric=False, crop=256)
    assert 256 <= windowed.mask.shape[0] < 300 and full.mask.shape[0] > 600  # only the window is resampled


def test_a_large_chip_at_its_own_gsd_is_rendered_in_a_window_too():
    chip = _chip_with_blocks(size=1024, gsd=3.0)
    aug = AugmentSettings(render_window=True, **NO_PHOTOMETRY)
    rng = np.random.default_rng(5)
    for _ in range(10):
        view = render_chip(chip, 3.0, SCALING, rng, aug, photometric=False, crop=256)
        assert 256 <= min(view.mask.shape) and max(view.mask.shape) < 400
    small = _chip_with_blocks(size=256, gsd=3.0)  # about one crop: rendered whole
    assert render_chip(small, 3.0, SCALING, np.random.default_rng(6), aug, photometric=False, crop=256).mask.shape[0] > 200
