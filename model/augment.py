"""Training-time views of a chip: resolution, scale, colour, blur, crop, flips, nodata.

Each view goes through the SAME per-chip percentile stretch as inference
(``core.scaling``), applied *after* resampling and degradation, because that is what
detection sees: a coarse scene, resampled to the model's GSD, then stretched. Imitating
10 m imagery this way (blur + the inference stretch) is what gave signal on Sentinel-2.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..core.chip_format import MASK_BACKGROUND, MASK_IGNORE, LoadedChip
from ..core.scaling import Stretch, apply_scaling, compute_stretch


@dataclass
class AugmentSettings:
    scale_jitter: float = 0.2  # relative size change, +-, around the model's GSD
    degrade_prob: float = 0.3  # chance to imitate coarser imagery (resample down, then back up)
    degrade_max_gsd: float = 10.0  # coarsest imagery imitated, metres
    blur_prob: float = 0.2
    colour_jitter: float = 0.12  # per-band gain/offset spread, gamma and saturation spread
    noise_std: float = 0.01
    nodata_prob: float = 0.1  # blank part of the view as nodata, labelled background
    mosaic_prob: float = 0.0  # 2x2 mosaics of chips: several or no slumps per view, anywhere
    flips: bool = True
    # Chips much larger than the crop (after resampling) are resampled only in a native window around
    # the crop, with the stretch from the whole chip's native pixels (see native_window). Off in the
    # bundled recipe, whose `make train-bundled` weights must not change.
    render_window: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class View:
    image: np.ndarray  # float32 (C, H, W), stretched to 0..1, invalid = 0
    valid: np.ndarray  # bool (H, W)
    mask: np.ndarray  # uint8 (H, W)


def _resize(array: torch.Tensor, size: Tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(array.shape[-2:]) == tuple(size):
        return array
    if mode == "nearest":
        return F.interpolate(array, size=size, mode="nearest")
    shrinking = size[0] < array.shape[-2]
    return F.interpolate(array, size=size, mode="area" if shrinking else "bilinear", align_corners=None if shrinking else False)


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(round(2.5 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = image.shape[1]
    padded = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


WINDOW_MARGIN_NATIVE_PX = 2  # beyond the crop, so bilinear edges and the crop's position stay free


def native_window(chip: LoadedChip, factor: float, crop: int, rng: np.random.Generator) -> Optional[LoadedChip]:
    """A random part of the chip, in its own pixels, that still covers a ``crop`` px view once
    resampled by ``factor``; None when that is most of the chip anyway. A 1024 px chip yields one
    256 px crop, and resampling and stretching all of it made a batch 1.6x dearer; a 256 px 10 m
    chip at a 3 m network is 853 px, 4x (docs/TRAINING.md, "Large chips in a window")."""
    h, w = chip.mask.shape
    side = int(math.ceil(crop / factor)) + 2 * WINDOW_MARGIN_NATIVE_PX
    if side * 1.5 >= max(h, w):
        return None
    nh, nw = min(h, side), min(w, side)
    top, left = int(rng.integers(0, h - nh + 1)), int(rng.integers(0, w - nw + 1))
    sl = (slice(top, top + nh), slice(left, left + nw))
    return replace(chip, image=chip.image[(slice(None),) + sl], valid=chip.valid[sl], mask=chip.mask[sl])


def render_chip(
    chip: LoadedChip,
    target_gsd: float,
    scaling: Dict[str, Any],
    rng: Optional[np.random.Generator] = None,
    aug: Optional[AugmentSettings] = None,
    photometric: bool = True,
    crop: Optional[int] = None,
) -> View:
    """The chip at ``target_gsd`` (jittered when augmenting), stretched to 0..1 like inference;
    ``photometric=False`` leaves colour jitter and noise to the caller (``jitter_colours``).
    With ``crop`` and ``aug.render_window``, a chip much larger than the crop is rendered only in
    a native window that covers a crop of that size (the caller still crops)."""
    factor = chip.gsd / target_gsd
    augment = rng is not None and aug is not None
    if augment and aug.scale_jitter > 0:
        factor *= math.exp(rng.uniform(math.log(1 - aug.scale_jitter), math.log(1 + aug.scale_jitter)))
    stretch_from: Optional[LoadedChip] = None
    if augment and crop and aug.render_window:
        window = native_window(chip, factor, crop, rng)
        if window is not None:
            # the whole chip's stretch from its own pixels, as detection takes it from a decimated read
            stretch_from, chip = chip, window
    h, w = chip.mask.shape
    out_size = (max(8, int(round(h * factor))), max(8, int(round(w * factor))))
    image = torch.from_numpy(chip.image)[None]
    coarse_floor = max(chip.gsd, target_gsd) * 1.3
    if augment and aug.degrade_prob > 0 and aug.degrade_max_gsd > coarse_floor and rng.random() < aug.degrade_prob:
        sim_gsd = rng.uniform(coarse_floor, aug.degrade_max_gsd)
        coarse = (max(4, int(round(h * chip.gsd / sim_gsd))), max(4, int(round(w * chip.gsd / sim_gsd))))
        image = _resize(image, coarse, "area")
    image = _resize(image, out_size, "bilinear")
    if augment and aug.blur_prob > 0 and rng.random() < aug.blur_prob:
        image = _gaussian_blur(image, rng.uniform(0.5, 1.5))
    valid_t = torch.from_numpy(chip.valid.astype(np.float32))[None, None]
    mask_t = torch.from_numpy(chip.mask.astype(np.float32))[None, None]
    valid = _resize(valid_t, out_size, "nearest")[0, 0].numpy() > 0.5
    mask = _resize(mask_t, out_size, "nearest")[0, 0].numpy().astype(np.uint8)
    data = image[0].numpy()
    # The shared stretch, with unit statistics so the result stays 0..1 for colour jitter;
    # normalise() applies the checkpoint's mean/std afterwards: same numbers as inference.
    unit = dict(scaling, mean=[0.0] * data.shape[0], std=[1.0] * data.shape[0])
    stretch = _view_stretch(data, valid, scaling) if stretch_from is None else \
        _view_stretch(stretch_from.image, stretch_from.valid, scaling)
    stretched = apply_scaling(data, valid, stretch, unit)
    if augment and photometric:
        stretched = _colour_jitter(stretched, valid, rng, aug)
    return View(stretched.astype(np.float32), valid, mask)


STRETCH_SAMPLE_PX = 1 << 16  # percentiles of the 2nd and 98th kind move by < 0.1 % of the range at this sample size


def _view_stretch(data: np.ndarray, valid: np.ndarray, scaling: Dict[str, Any]) -> Stretch:
    """The stretch of a rendered view from a regular sample of its pixels, as detection takes
    it from a decimated read of the scene: the full-view percentiles were a third of the cost
    of building a training batch."""
    step = max(1, int(math.sqrt(valid.size / STRETCH_SAMPLE_PX)))
    return compute_stretch(data[:, ::step, ::step], valid[::step, ::step], scaling)


def jitter_colours(view: View, rng: np.random.Generator, aug: AugmentSettings) -> View:
    """Colour jitter and noise on a view that is already cropped: the same distribution as on
    the whole rendered chip, at the cost of the crop's pixels only."""
    return View(_colour_jitter(view.image, view.valid, rng, aug), view.valid, view.mask)


def _colour_jitter(image: np.ndarray, valid: np.ndarray, rng: np.random.Generator, aug: AugmentSettings) -> np.ndarray:
    s = aug.colour_jitter
    if s <= 0:
        return image
    c = image.shape[0]
    # float32 throughout and in place: this runs on every training crop, in the batch thread
    gain = (rng.normal(1.0, s, size=(c, 1, 1)) * rng.normal(1.0, s)).astype(np.float32)  # per band, then brightness
    offset = rng.normal(0.0, s / 2, size=(c, 1, 1)).astype(np.float32)
    out = image.astype(np.float32) * gain
    out += offset
    if c >= 3:  # saturation: blend with the grey image (covers dull Sentinel-2 and vivid Planet)
        grey = out.mean(axis=0, keepdims=True)
        out -= grey
        out *= np.float32(rng.uniform(1 - 2 * s, 1 + 2 * s))
        out += grey
    gamma = np.float32(math.exp(rng.normal(0.0, s)))
    np.clip(out, 0.0, 1.0, out=out)
    np.power(out, gamma, out=out)
    if aug.noise_std > 0:
        out += _noise(out.shape, rng) * np.float32(aug.noise_std)
    np.clip(out, 0.0, 1.0, out=out)
    out[:, ~valid] = 0.0
    return out


NOISE_BANK_SIZE = 1 << 22


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    return np.random.default_rng(20201).standard_normal(NOISE_BANK_SIZE, dtype=np.float32)


def _noise(shape: Tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit Gaussian noise of ``shape``: a window at a random offset of a fixed bank of 4 M
    draws. Drawing fresh normals for every crop cost a sixth of building a batch; pixel noise
    only has to differ between crops and have the right spread, which the offset gives."""
    bank = _noise_bank()
    size = int(np.prod(shape))
    if size >= bank.size:
        return rng.standard_normal(size=shape, dtype=np.float32)
    start = int(rng.integers(0, bank.size - size))
    return bank[start:start + size].reshape(shape)


def pad_to(view: View, height: int, width: int, pad_label: int = MASK_IGNORE, rng: Optional[np.random.Generator] = None) -> View:
    """Pad a view up to at least height x width; padding is nodata with ``pad_label``."""
    h, w = view.mask.shape
    ph, pw = max(0, height - h), max(0, width - w)
    if not ph and not pw:
        return view
    top = int(rng.integers(0, ph + 1)) if rng is not None else ph // 2
    left = int(rng.integers(0, pw + 1)) if rng is not None else pw // 2
    pads = ((top, ph - top), (left, pw - left))
    image = np.pad(view.image, ((0, 0),) + pads)
    valid = np.pad(view.valid, pads, constant_values=False)
    mask = np.pad(view.mask, pads, constant_values=pad_label)
    return View(image, valid, mask)


def random_crop(view: View, size: int, rng: np.random.Generator, pad_label: int = MASK_IGNORE) -> View:
    """A crop at a random position (slumps are not always centred); small chips are padded."""
    view = pad_to(view, size, size, pad_label, rng)
    h, w = view.mask.shape
    top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    sl = (slice(top, top + size), slice(left, left + size))
    return View(view.image[(slice(None),) + sl], view.valid[sl], view.mask[sl])


def mosaic(views: Sequence[View], rng: np.random.Generator) -> View:
    """2x2 mosaic of four views, so a crop may hold several slumps, part of one, or none."""
    cell_h = max(v.mask.shape[0] for v in views)
    cell_w = max(v.mask.shape[1] for v in views)
    cells = [pad_to(v, cell_h, cell_w, MASK_IGNORE, rng) for v in views[:4]]
    top = [
        np.concatenate([cells[0].image, cells[1].image], 2),
        np.concatenate([cells[0].valid, cells[1].valid], 1),
        np.concatenate([cells[0].mask, cells[1].mask], 1),
    ]
    bottom = [
        np.concatenate([cells[2].image, cells[3].image], 2),
        np.concatenate([cells[2].valid, cells[3].valid], 1),
        np.concatenate([cells[2].mask, cells[3].mask], 1),
    ]
    return View(np.concatenate([top[0], bottom[0]], 1), np.concatenate([top[1], bottom[1]], 0), np.concatenate([top[2], bottom[2]], 0))


def flip_rotate(view: View, rng: np.random.Generator) -> View:
    k = int(rng.integers(0, 4))
    image, valid, mask = np.rot90(view.image, k, (1, 2)), np.rot90(view.valid, k), np.rot90(view.mask, k)
    if rng.random() < 0.5:
        image, valid, mask = image[:, :, ::-1], valid[:, ::-1], mask[:, ::-1]
    return View(np.ascontiguousarray(image), np.ascontiguousarray(valid), np.ascontiguousarray(mask))


def blank_nodata(view: View, rng: np.random.Generator) -> View:
    """Blank a band along one edge, as unimaged scene borders look; it is never a slump."""
    h, w = view.mask.shape
    image, valid, mask = view.image.copy(), view.valid.copy(), view.mask.copy()
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, 2 * math.pi)
    proj = (xx - w / 2) * math.cos(angle) + (yy - h / 2) * math.sin(angle)
    cut = proj > rng.uniform(0.1, 0.45) * max(h, w)
    image[:, cut] = 0.0
    valid[cut] = False
    mask[cut] = MASK_BACKGROUND
    return View(image, valid, mask)


def normalise(view: View, scaling: Dict[str, Any]) -> Tuple[np.ndarray, np.ndarray]:
    """0..1 view -> network input with the checkpoint's mean/std (invalid = 0, as inference)."""
    mean = np.asarray(scaling["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(scaling["std"], dtype=np.float32)[:, None, None]
    x = (view.image - mean) / std
    x[:, ~view.valid] = 0.0
    return x.astype(np.float32), view.mask


def training_sample(
    chips: List[LoadedChip], index: int, target_gsd: float, scaling: Dict[str, Any],
    crop: int, rng: np.random.Generator, aug: AugmentSettings,
) -> Tuple[np.ndarray, np.ndarray]:
    """One augmented (input, mask) pair for chip ``index`` (or a mosaic starting from it)."""
    if aug.mosaic_prob > 0 and len(chips) > 1 and rng.random() < aug.mosaic_prob:
        others = rng.choice(len(chips), size=3, replace=len(chips) < 4)
        views = [render_chip(chips[i], target_gsd, scaling, rng, aug) for i in [index, *others]]  # one colour per chip
        order = rng.permutation(4)
        view = random_crop(mosaic([views[i] for i in order], rng), crop, rng)
    else:
        view = render_chip(chips[index], target_gsd, scaling, rng, aug, photometric=False, crop=crop)
        view = jitter_colours(random_crop(view, crop, rng), rng, aug)
    if aug.flips:
        view = flip_rotate(view, rng)
    if aug.nodata_prob > 0 and rng.random() < aug.nodata_prob:
        view = blank_nodata(view, rng)
    return normalise(view, scaling)
