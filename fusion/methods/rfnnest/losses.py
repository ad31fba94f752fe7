"""RFN-Nest's two training losses, as the authors' code computes them.

Stage 1, the nest auto-encoder (NestFuse's training, which RFN-Nest reuses):

    L_auto = ||O - I||² + lambda (1 - MS-SSIM(O, I)),  lambda = 100, pixels on [0, 255]

Stage 2, the RFN with the auto-encoder frozen:

    L_RFN    = alpha L_detail + L_feature,                   alpha = 700
    L_detail = 1 - MS-SSIM(rescale(O), I_vi)
    L_feature = Σ_m w_m ||Φ_f^m - (w_ir Φ_ir^m + w_vi Φ_vi^m)||²,  w = (1, 10, 100, 1000),
                                                               w_ir = 6, w_vi = 3

Followed from the authors' code where the paper is silent:

- squared norms are means over elements (torch's MSE), and stage 1's pixel term is on the
  networks' [0, 255] intensities, not on [0, 1] (a factor 65,025: on [0, 1] stage 1 would be
  MS-SSIM alone);
- SSIM is 5-scale MS-SSIM (weights 0.0448 ... 0.1333, 11x11 Gaussian window, sigma 1.5) with
  each scale's terms mapped to (x + 1) / 2 (their ``normalize=True``; torchmetrics'
  ``normalize="simple"``);
- ``rescale`` min-max rescales the fused output of the batch to the sources' range before
  MS-SSIM: the feature target 6 Φ_ir + 3 Φ_vi is several times one image's scale, so the raw
  output is too (the same rescaling is applied when fusing, model.py).

DECISION (ours): MS-SSIM is torchmetrics' (fusion/methods/msssim.py, which also says what a crop
too small for five scales gets), combining the scales as Wang et al. (2003) define it; the
authors' copy raises the coarsest scale's SSIM to four times its weight (it multiplies that
factor into each of the four finer ones).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fusion.methods.learned import min_max
from fusion.methods.msssim import ms_ssim as multiscale_ssim


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The authors' normalised MS-SSIM of two [0, 1] image batches."""
    return multiscale_ssim(x, y, data_range=1.0, normalize="simple")


def autoencoder_loss(model, ir: torch.Tensor, vi: torch.Tensor, config) -> tuple[torch.Tensor, dict]:
    """Stage 1 on infrared and visible crops alike (each its own sample)."""
    images = torch.cat([ir, vi])
    rebuilt = model(images)
    scale = config.intensity_scale
    pixel = F.mse_loss(rebuilt * scale, images * scale)
    structure = 1 - ms_ssim(rebuilt, images)
    total = pixel + config.ssim_weight * structure
    return total, {"total": total.detach(), "pixel": pixel.detach(), "ssim": structure.detach()}


def rfn_loss(model, ir: torch.Tensor, vi: torch.Tensor, config) -> tuple[torch.Tensor, dict]:
    """Stage 2: the RFN learns; the frozen encoder's features of each source are the targets."""
    with torch.no_grad():
        f_ir, f_vi = model.encode(ir), model.encode(vi)
    fused_features = model.merge(f_ir, f_vi)
    fused = min_max(model.decode(fused_features), epsilon=model.rescale_epsilon, per_image=False)
    detail = 1 - ms_ssim(fused, vi)
    feature = sum(
        weight * F.mse_loss(f, config.ir_weight * a + config.vi_weight * b)
        for weight, f, a, b in zip(config.feature_weights, fused_features, f_ir, f_vi, strict=True)
    )
    total = config.detail_weight * detail + feature
    return total, {"total": total.detach(), "detail": detail.detach(), "feature": feature.detach()}
