"""Histogram-contrast saliency (Cheng et al., CVPR 2011, its grey-level form): a pixel of grey
level g is as salient as it differs from the whole image, sum_h |g - h| hist(h), divided by the
image's largest value. UMF's authors weight their loss with it; TarDAL's infrared masks come from
it here (fusion/methods/tardal/losses.py).
"""

from __future__ import annotations

import torch

LEVELS = 256


def saliency(images: torch.Tensor) -> torch.Tensor:
    """Visual saliency maps (B, 1, H, W) in [0, 1] of [0, 1] images quantised to 8 bits."""
    levels = (images * 255).round().long().clamp(0, LEVELS - 1).flatten(1)
    # per-image histograms by one scatter (a bincount per row must read its maximum back: a wait on a GPU)
    histogram = torch.zeros(len(levels), LEVELS, device=images.device).scatter_add_(
        1, levels, torch.ones_like(levels, dtype=torch.float32)
    )
    grey = torch.arange(LEVELS, dtype=torch.float32, device=images.device)
    contrast = histogram @ (grey[:, None] - grey[None, :]).abs()  # (B, 256): Σ_h |g - h| hist(h)
    maps = torch.gather(contrast, 1, levels)
    peak = maps.amax(dim=1, keepdim=True)
    return torch.where(peak > 0, maps / peak.clamp_min(1e-12), torch.zeros_like(maps)).view_as(images)
