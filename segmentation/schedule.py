"""Learning rate per epoch: cosine decay over the whole run (paper 4.1), with the anchor code's
options (batch scaling, quadratic warm-up) as switches."""

from __future__ import annotations

import math

from configs.schema import SegmentationConfig


def phase_batch(config: SegmentationConfig, epoch: int) -> int:
    return config.freeze_batch_size if epoch < config.freeze_epochs else config.batch_size


def learning_rate(config: SegmentationConfig, epoch: int) -> float:
    """The lr of ``epoch`` (0-based), set at the start of the epoch.

    Paper text: lr 7e-3, "decreased by the cosine annealing" over all epochs, down to
    ``lr * min_lr_ratio``. ``lr_batch_scaling`` multiplies by (phase batch / 16) as the anchor
    code does (3.5e-3 frozen, 1.75e-3 after); ``warmup_epochs`` ramps quadratically from a tenth.
    """
    base = config.lr
    if config.lr_batch_scaling:
        base *= phase_batch(config, epoch) / 16
    low = base * config.min_lr_ratio
    if epoch < config.warmup_epochs:
        start = 0.1 * base
        return start + (base - start) * ((epoch + 1) / config.warmup_epochs) ** 2
    span = max(config.epochs - config.warmup_epochs, 1)
    progress = (epoch - config.warmup_epochs) / span
    return low + 0.5 * (base - low) * (1 + math.cos(math.pi * progress))
