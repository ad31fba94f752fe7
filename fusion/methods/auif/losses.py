"""AUIF's training loss: the auto-encoder learns to give each image back,

    L = ||X - X̂||² + lambda (1 - SSIM(X, X̂)) / 2,   lambda = 5,

over infrared and visible images alike (each is its own training sample).

DECISION: the squared norm is a mean over pixels; SSIM is kornia's with a 3x3 window, the window
of the authors' public code (the paper does not give one).
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F


def auif_loss(model, ir: torch.Tensor, vi: torch.Tensor, config) -> tuple[torch.Tensor, dict]:
    images = torch.cat([ir, vi])
    rebuilt = model(images)
    mse = F.mse_loss(rebuilt, images)
    ssim = kornia.losses.ssim_loss(rebuilt, images, window_size=config.ssim_window, max_val=1.0)
    total = mse + config.ssim_weight * ssim
    return total, {"total": total.detach(), "mse": mse.detach(), "ssim": ssim.detach()}
