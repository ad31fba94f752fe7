"""DIDFuse's training loss, on an infrared and a visible batch, as the authors' code computes it:

    L = tanh(||B_I - B_V||_1) - alpha1 tanh(||D_I - D_V||_1)
        + alpha2 f(I, Î) + alpha3 f(V, V̂) + alpha4 ||∇V - ∇V̂||_1
    f(X, X̂) = ||X - X̂||² + lambda (1 - SSIM(X, X̂)) / 2

The first two terms make the background maps of the two sources alike and their detail maps
different (tanh bounds both so neither runs away); the rest asks the decoder to give each image
back, the visible one with its gradients.

The paper writes the first two terms with squared l2 norms and alpha1 = 0.05; the authors' code
takes l1 norms (mean absolute differences) and alpha1 = 0.5, which pushes the detail maps apart
10-30 times harder. The code is followed (the default ``alpha1`` is 0.5).

DECISION (ours): every norm is a mean over elements (torch's L1 and MSE, as the authors' code),
so the weights (alpha1 0.5, alpha2 = alpha3 = 2, alpha4 10, lambda 5) act on per-pixel scales
whatever the crop; the SSIM loss is kornia's (1 - SSIM) / 2 with an 11x11 window, ∇ the Sobel
gradient (kornia), both as in the authors' code.
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F


def ssim_loss(x: torch.Tensor, x_hat: torch.Tensor, window: int = 11) -> torch.Tensor:
    """(1 - SSIM) / 2 of two [0, 1] image batches (kornia.losses.ssim_loss, mean of the map)."""
    return kornia.losses.ssim_loss(x_hat, x, window_size=window, max_val=1.0)


def gradient_l1(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the two images' Sobel gradients (both directions)."""
    return F.l1_loss(kornia.filters.spatial_gradient(x_hat), kornia.filters.spatial_gradient(x))


def didfuse_loss(model, ir: torch.Tensor, vi: torch.Tensor, config) -> tuple[torch.Tensor, dict]:
    parts_ir, ir_hat = model(ir)
    parts_vi, vi_hat = model(vi)
    base = torch.tanh(F.l1_loss(parts_ir.base, parts_vi.base))
    detail = torch.tanh(F.l1_loss(parts_ir.detail, parts_vi.detail))
    rec_ir = F.mse_loss(ir_hat, ir) + config.ssim_weight * ssim_loss(ir, ir_hat)
    rec_vi = F.mse_loss(vi_hat, vi) + config.ssim_weight * ssim_loss(vi, vi_hat)
    grad = gradient_l1(vi, vi_hat)
    total = (
        base - config.alpha1 * detail + config.alpha2 * rec_ir + config.alpha3 * rec_vi + config.alpha4 * grad
    )
    return total, {
        "total": total.detach(),
        "base": base.detach(),
        "detail": detail.detach(),
        "rec_ir": rec_ir.detach(),
        "rec_vi": rec_vi.detach(),
        "grad": grad.detach(),
    }
