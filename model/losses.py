"""Loss for a rare class: slumps cover a few percent of a chip.

Binary cross-entropy keeps per-pixel probabilities calibrated (the threshold is tuned
later); soft Dice over the batch counters the imbalance. Pixels marked 255 count for
neither.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn.functional as F

from ..core.chip_format import MASK_IGNORE


def bce_dice_loss(logits: torch.Tensor, mask: torch.Tensor, dice_weight: float = 1.0, pos_weight: float = 2.0) -> torch.Tensor:
    """``logits`` (N, 1, H, W); ``mask`` (N, H, W) uint8/long with 0, 1 and 255 (ignored)."""
    logits = logits[:, 0]
    valid = (mask != MASK_IGNORE).float()
    target = (mask == 1).float()
    n_valid = valid.sum().clamp_min(1.0)
    bce = F.binary_cross_entropy_with_logits(
        logits, target, weight=valid, reduction="sum", pos_weight=torch.tensor(pos_weight, device=logits.device)
    ) / n_valid
    prob = torch.sigmoid(logits) * valid
    intersection = (prob * target).sum()
    dice = 1.0 - (2.0 * intersection + 1.0) / (prob.sum() + target.sum() + 1.0)
    return bce + dice_weight * dice


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. errors sorted along the last
    dimension (Berman 2018), for each row."""
    gts = gt_sorted.sum(-1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(-1)
    union = gts + (1.0 - gt_sorted).cumsum(-1)  # >= 1 everywhere: never divides by zero
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)


def lovasz_hinge_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Lovasz hinge over each image (a surrogate of IoU itself), ignored pixels left out.

    All images in one sort: ignored pixels get the error -inf, so they sort after every kept
    pixel of their image, where they change no kept pixel's gradient and add relu(-inf) = 0.
    Forward and backward for 8 crops: 18.7 ms at 160 px and 42 ms at 256 px, against 27.5 and
    73 ms for a loop over the images (session 10, 2 cores of an Intel Xeon)."""
    flat_logits = logits[:, 0].flatten(1)
    flat_mask = mask.flatten(1)
    keep = flat_mask != MASK_IGNORE
    target = (flat_mask == 1).to(flat_logits.dtype)
    errors = torch.where(keep, 1.0 - flat_logits * (2.0 * target - 1.0), torch.full_like(flat_logits, float("-inf")))
    errors_sorted, perm = torch.sort(errors, dim=1, descending=True)
    per_image = (F.relu(errors_sorted) * _lovasz_grad(target.gather(1, perm))).sum(1)
    scored = keep.any(1)
    return per_image[scored].mean() if bool(scored.any()) else logits.sum() * 0.0


def bce_lovasz_loss(logits: torch.Tensor, mask: torch.Tensor, pos_weight: float = 2.0) -> torch.Tensor:
    """BCE for calibrated probabilities plus Lovasz hinge for the overlap the paper's rule scores."""
    return bce_dice_loss(logits, mask, dice_weight=0.0, pos_weight=pos_weight) + lovasz_hinge_loss(logits, mask)


def focal_tversky_loss(logits: torch.Tensor, mask: torch.Tensor, alpha: float = 0.3, beta: float = 0.7, gamma: float = 0.75,
                       pos_weight: float = 2.0) -> torch.Tensor:
    """BCE plus focal Tversky (beta > alpha weighs misses above false alarms: recall first)."""
    valid = (mask != MASK_IGNORE).float()
    target = (mask == 1).float()
    prob = torch.sigmoid(logits[:, 0]) * valid
    tp = (prob * target).sum()
    fn = ((1.0 - prob) * target * valid).sum()
    fp = (prob * (1.0 - target)).sum()
    tversky = (tp + 1.0) / (tp + alpha * fp + beta * fn + 1.0)
    return bce_dice_loss(logits, mask, dice_weight=0.0, pos_weight=pos_weight) + (1.0 - tversky) ** gamma


LOSSES = {"bce_dice": bce_dice_loss, "bce_lovasz": bce_lovasz_loss, "focal_tversky": focal_tversky_loss}


def loss_function(name: str, positive_weight: float = 2.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The named loss with its BCE term's weight on slump pixels."""
    from ..core.errors import UserError

    if name not in LOSSES:
        raise UserError(f"Unknown loss {name!r}; use one of {', '.join(LOSSES)}.")
    if positive_weight <= 0:
        raise UserError(f"The positive weight must be above 0; got {positive_weight}.")
    return functools.partial(LOSSES[name], pos_weight=positive_weight)
