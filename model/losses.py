"""Loss for a rare class: slumps cover a few percent of a chip.

Binary cross-entropy keeps per-pixel probabilities calibrated (the threshold is tuned
later); soft Dice over the batch counters the imbalance. Pixels marked 255 count for
neither.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .chip_dataset import MASK_IGNORE


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
