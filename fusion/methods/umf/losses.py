"""UMF's fusion loss, as the authors' code computes it (the paper's fusion loss):

    L = alpha (1 - MS-SSIM(F, T)) + beta ||F - T||_1 + theta || |∇²F| - max(|∇²I|, |∇²V|) ||_1
    T = w_I I + w_V V,   w_I = 1/2 + (S_I - S_V) / 2,   w_V = 1/2 + (S_V - S_I) / 2

alpha 1, beta 20, theta 5; ∇² is the normalised 3x3 Laplacian (kornia, as theirs); S is each
source's visual saliency map: the grey level g of a pixel maps to Σ_h |g - h| hist(h), the
image's histogram contrast, divided by its maximum.

Followed from the authors' code where the paper is silent:

- the saliency maps are computed per training image (their 256 x 256 training images; here
  per training crop) and the weights stored as 8 bits (floor of 255 w), as their map files;
- MS-SSIM takes the [0, 1] images with the constants of a [0, 255] range (their ``max_val``
  255), which leaves mostly the luminance term of SSIM; norms are means over elements.

DECISION (ours): MS-SSIM is torchmetrics' (fusion/methods/msssim.py), which pads by reflection
where the authors' zero-pads and which combines the scales as Wang et al. (2003) define it.
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F

from fusion.methods.msssim import ms_ssim
from fusion.methods.saliency import saliency


def saliency_weights(ir: torch.Tensor, vi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(w_I, w_V), each stored as 8 bits like the authors' weight maps."""
    s_ir, s_vi = saliency(ir), saliency(vi)
    stored = lambda w: torch.floor(w * 255) / 255  # noqa: E731
    return stored(0.5 + 0.5 * (s_ir - s_vi)), stored(0.5 + 0.5 * (s_vi - s_ir))


def umf_loss(model, ir: torch.Tensor, vi: torch.Tensor, config) -> tuple[torch.Tensor, dict]:
    fused = model(ir, vi)
    w_ir, w_vi = saliency_weights(ir, vi)
    target = w_ir * ir + w_vi * vi
    structure = 1 - ms_ssim(fused, target, data_range=255.0)
    intensity = F.l1_loss(fused, target)
    edges = lambda x: kornia.filters.laplacian(x, 3).abs()  # noqa: E731
    gradient = F.l1_loss(edges(fused), torch.maximum(edges(ir), edges(vi)))
    total = config.alpha * structure + config.beta * intensity + config.theta * gradient
    return total, {
        "total": total.detach(),
        "ms_ssim": structure.detach(),
        "l1": intensity.detach(),
        "gradient": gradient.detach(),
    }
