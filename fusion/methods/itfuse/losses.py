"""ITFuse's loss, as the authors' code computes it:

    L = w1 C(F, I) + w2 C(F, V) + w3 (1 - SSIM(F, I)) + w4 (1 - SSIM(F, V)),  w = (1, 1, 4, 4)

C is the Charbonnier penalty mean(sqrt((F - X)² + eps²)), eps = 1e-3; SSIM has an 11x11
Gaussian window (sigma 1.5) over the valid region only and the constants of a [0, 1] range
(kornia's ``padding="valid"``, which equals the authors' function).
"""

from __future__ import annotations

import kornia
import torch


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((x - y) ** 2 + eps**2).mean()


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    window = min(11, *x.shape[-2:])
    return kornia.metrics.ssim(x, y, window, max_val=1.0, padding="valid").mean()


def itfuse_loss(model, ir: torch.Tensor, vi: torch.Tensor, config) -> tuple[torch.Tensor, dict]:
    fused = model(ir, vi)
    w = config.loss_weights
    terms = {
        "charbonnier_ir": charbonnier(fused, ir),
        "charbonnier_vi": charbonnier(fused, vi),
        "ssim_ir": 1 - ssim(fused, ir),
        "ssim_vi": 1 - ssim(fused, vi),
    }
    total = sum(weight * term for weight, term in zip(w, terms.values(), strict=True))
    return total, {"total": total.detach(), **{name: value.detach() for name, value in terms.items()}}
