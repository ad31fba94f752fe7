"""Dice + cross-entropy, the paper's segmentation loss (section 4.1), label 255 ignored by both."""

from __future__ import annotations

import torch
from segmentation_models_pytorch.losses import DiceLoss

from msrs.classes import IGNORE_INDEX


class DiceCELoss(torch.nn.Module):
    """``ce_weight * CE + dice_weight * Dice`` on logits (B, C, H, W) and labels (B, H, W)."""

    def __init__(self, dice_weight: float = 1.0, ce_weight: float = 1.0, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.dice_weight, self.ce_weight = dice_weight, ce_weight
        self.dice = DiceLoss(mode="multiclass", ignore_index=ignore_index)
        self.ce = torch.nn.CrossEntropyLoss(ignore_index=ignore_index)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.long()
        return self.ce_weight * self.ce(logits, labels) + self.dice_weight * self.dice(logits, labels)
