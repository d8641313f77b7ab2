"""Loss for a rare class: slumps cover a few percent of a chip.

Binary cross-entropy keeps per-pixel probabilities calibrated (the threshold is tuned
later); soft Dice over the batch counters the imbalance. Pixels marked 255 count for
neither.
"""
from __future__ import annotations

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
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (Berman 2018)."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_hinge_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Lovasz hinge over each image (a surrogate of IoU itself), ignored pixels left out."""
    losses = []
    for lg, mk in zip(logits[:, 0], mask):
        keep = mk != MASK_IGNORE
        lg, target = lg[keep], (mk[keep] == 1).float()
        if lg.numel() == 0:
            continue
        signs = 2.0 * target - 1.0
        errors = 1.0 - lg * signs
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(F.relu(errors_sorted), _lovasz_grad(target[perm])))
    return torch.stack(losses).mean() if losses else logits.sum() * 0.0


def bce_lovasz_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BCE for calibrated probabilities plus Lovasz hinge for the overlap the paper's rule scores."""
    return bce_dice_loss(logits, mask, dice_weight=0.0) + lovasz_hinge_loss(logits, mask)


def focal_tversky_loss(logits: torch.Tensor, mask: torch.Tensor, alpha: float = 0.3, beta: float = 0.7, gamma: float = 0.75) -> torch.Tensor:
    """BCE plus focal Tversky (beta > alpha weighs misses above false alarms: recall first)."""
    valid = (mask != MASK_IGNORE).float()
    target = (mask == 1).float()
    prob = torch.sigmoid(logits[:, 0]) * valid
    tp = (prob * target).sum()
    fn = ((1.0 - prob) * target * valid).sum()
    fp = (prob * (1.0 - target)).sum()
    tversky = (tp + 1.0) / (tp + alpha * fp + beta * fn + 1.0)
    return bce_dice_loss(logits, mask, dice_weight=0.0) + (1.0 - tversky) ** gamma


LOSSES = {"bce_dice": bce_dice_loss, "bce_lovasz": bce_lovasz_loss, "focal_tversky": focal_tversky_loss}


def loss_function(name: str):
    from ..core.errors import UserError

    if name not in LOSSES:
        raise UserError(f"Unknown loss {name!r}; use one of {', '.join(LOSSES)}.")
    return LOSSES[name]
