"""Learning rate per epoch: cosine decay over the whole run (paper 4.1), with the anchor code's
options (batch scaling, quadratic warm-up, a final hold at the minimum) as switches."""

from __future__ import annotations

import math

from configs.schema import SegmentationConfig

NOMINAL_BATCH = 16  # the anchor code's nbs: lr is given for a batch of 16
SGD_LR_LIMITS = (5e-4, 1e-1)  # the anchor code's SGD bounds on the scaled lr
MIN_LR_LIMITS = (5e-6, 1e-3)  # ... and on the scaled minimum lr (a hundredth of the above)


def phase_batch(config: SegmentationConfig, epoch: int) -> int:
    return config.freeze_batch_size if epoch < config.freeze_epochs else config.batch_size


def _clip(value: float, limits: tuple[float, float]) -> float:
    return min(max(value, limits[0]), limits[1])


def lr_range(config: SegmentationConfig, epoch: int) -> tuple[float, float]:
    """(peak, minimum) lr of the phase ``epoch`` belongs to. ``lr_batch_scaling`` multiplies both
    by (phase batch / 16) within the anchor code's SGD limits (3.5e-3 frozen, 1.75e-3 after for
    the paper's 7e-3 and batches 8 / 4)."""
    peak, low = config.lr, config.lr * config.min_lr_ratio
    if config.lr_batch_scaling:
        scale = phase_batch(config, epoch) / NOMINAL_BATCH
        peak, low = _clip(peak * scale, SGD_LR_LIMITS), _clip(low * scale, MIN_LR_LIMITS)
    return peak, low


def learning_rate(config: SegmentationConfig, epoch: int) -> float:
    """The lr of ``epoch`` (0-based), set at the start of the epoch.

    Paper text: lr 7e-3, "decreased by the cosine annealing" over all epochs, down to
    ``lr * min_lr_ratio``. The anchor code's "warm cos" (its ``yolox_warm_cos_lr`` evaluated per
    epoch over all epochs), with ``W = warmup_epochs`` and ``H = hold_epochs``:

    - ``e <= W``: quadratic ramp ``start + (peak - start) (e / W)^2`` from
      ``start = max(peak / 10, 1e-6)``, so epoch 0 runs at a tenth and epoch ``W`` at the peak;
    - ``e >= epochs - H``: the minimum;
    - otherwise cosine from the peak at ``e = W`` towards the minimum at ``e = epochs - H``.

    With ``W = H = 0`` this is the plain cosine of the text. At the unfreeze the peak and the
    minimum change with the phase batch while the epoch index runs on, as in the anchor code.
    """
    peak, low = lr_range(config, epoch)
    warmup, hold, total = config.warmup_epochs, config.hold_epochs, config.epochs
    if warmup and epoch <= warmup:
        start = max(0.1 * peak, 1e-6)
        return start + (peak - start) * (epoch / warmup) ** 2
    if hold and epoch >= total - hold:
        return low
    progress = (epoch - warmup) / max(total - warmup - hold, 1)
    return low + 0.5 * (peak - low) * (1 + math.cos(math.pi * progress))
