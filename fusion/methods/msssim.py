"""Multi-scale SSIM as a training loss term (RFN-Nest, UMF): torchmetrics' MS-SSIM (Wang et al.
2003: 11x11 Gaussian window, sigma 1.5, scale weights 0.0448 ... 0.1333) on crops of any size.

DECISION (ours): a crop too small for five scales (torchmetrics needs 176 px for five, 99 for
four, 44 for three) uses as many scales as fit, their weights renormalised to sum to 1: the CPU
configs crop 64 or 128 px where the authors train on 256 px images (five scales).
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW = 11


def scale_weights(side: int) -> tuple[float, ...]:
    """The MS-SSIM scale weights usable on images whose shorter side is ``side`` pixels
    (torchmetrics: ``side // (scales - 1)² > window - 1``), renormalised to sum to 1."""
    for scales in range(len(MS_SSIM_WEIGHTS), 0, -1):
        if side >= 2**scales and side // max(1, scales - 1) ** 2 > WINDOW - 1:
            weights = MS_SSIM_WEIGHTS[:scales]
            return tuple(w / sum(weights) for w in weights)
    raise ValueError(f"images of {side} px are too small for an {WINDOW}x{WINDOW} SSIM window")


def ms_ssim(
    x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, normalize: str | None = None
) -> torch.Tensor:
    """MS-SSIM of two image batches (mean over the batch). ``data_range`` sets the constants
    C1 = (0.01 L)², C2 = (0.03 L)²; ``normalize="simple"`` maps each scale's terms to (x + 1) / 2."""
    return multiscale_structural_similarity_index_measure(
        x,
        y,
        kernel_size=WINDOW,
        sigma=1.5,
        data_range=data_range,
        betas=scale_weights(min(x.shape[-2:])),
        normalize=normalize,
    )
