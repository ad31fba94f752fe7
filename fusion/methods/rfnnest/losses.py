"""RFN-Nest's two training losses.

Stage 1, the nest auto-encoder :   L_auto = ||O - I||² + lambda (1 - SSIM(O, I)), lambda 100.
Stage 2, the RFN with the auto-encoder frozen:

    L_RFN    = alpha L_detail + L_feature,                   alpha = 700
    L_detail = 1 - SSIM(O, I_vi)
    L_feature = Σ_m w_m ||Φ_f^m - (w_ir Φ_ir^m + w_vi Φ_vi^m)||²,  w = (1, 10, 100, 1000),
                                                               w_ir = 6, w_vi = 3

DECISION: squared norms are means over elements (torch's MSE, as the authors' code); SSIM is
kornia's with an 11x11 Gaussian window on [0, 1] images; the fused output is not min-max
rescaled before SSIM (the authors' code does so; the paper's equations do not).
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return kornia.metrics.ssim(x, y, window_size=11, max_val=1.0).mean()


def autoencoder_loss(model, ir: torch.Tensor, vi: torch.Tensor, config) -> tuple[torch.Tensor, dict]:
    """Stage 1 on infrared and visible crops alike (each its own sample)."""
    images = torch.cat([ir, vi])
    rebuilt = model(images)
    pixel = F.mse_loss(rebuilt, images)
    structure = 1 - ssim(rebuilt, images)
    total = pixel + config.ssim_weight * structure
    return total, {"total": total.item(), "pixel": pixel.item(), "ssim": structure.item()}


def rfn_loss(model, ir: torch.Tensor, vi: torch.Tensor, config) -> tuple[torch.Tensor, dict]:
    """Stage 2: the RFN learns; the frozen encoder's features of each source are the targets."""
    with torch.no_grad():
        f_ir, f_vi = model.encode(ir), model.encode(vi)
    fused_features = model.merge(f_ir, f_vi)
    fused = model.decode(fused_features)
    detail = 1 - ssim(fused, vi)
    feature = sum(
        weight * F.mse_loss(f, config.ir_weight * a + config.vi_weight * b)
        for weight, f, a, b in zip(config.feature_weights, fused_features, f_ir, f_vi, strict=True)
    )
    total = config.detail_weight * detail + feature
    return total, {"total": total.item(), "detail": detail.item(), "feature": feature.item()}
