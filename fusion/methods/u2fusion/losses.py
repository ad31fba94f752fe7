"""U2Fusion's loss, its information measure and adaptive weights as the authors' code computes
them, for one task:

    g_k = 1/5 sum_j mean( (∇ φ_j(I_k))² ),   (w_1, w_2) = softmax(g_1 / c, g_2 / c)
    L = mean_batch( w_1 (1 - SSIM(F, I_1)) + w_2 (1 - SSIM(F, I_2)) )
        + alpha mean_batch( w_1 MSE(F, I_1) + w_2 MSE(F, I_2) ),   alpha = 20

φ_j are five feature maps of a pretrained ImageNet network fed each source resized (nearest) to
224 x 224 as three equal channels; ∇ is the authors' 3x3 Laplacian (1/8 around, -1 at the
centre, zero-padded) on each channel; the weights are constants of the loss (no gradient flows
into them). SSIM: 11 x 11 Gaussian window, sigma 1.5, the valid part of the map averaged per
image (torchmetrics); MSE: the squared Frobenius norm over h x w, per image.

Followed from the authors' code where the paper is silent: each batch presents the two sources
in a random order (their ``s1_index``), so the network learns no fixed role per input.

DECISION (ours): φ are the five stages of the packaged EfficientNet-Lite0 (fusion/methods/imagenet.py)
where the authors take VGG-16's conv1_2, conv2_2, conv3_3, conv4_3 and conv5_3, whose ImageNet
weights cannot be had offline. Their features are of another scale, so c is ours too, chosen
on training data: on 64 px crops of the MFNet training pairs g is 9.1 (infrared) and 10.2
(visible) on average and the two sources of a crop differ by 1.06 (median), so
``information_scale`` 1.0 gives a crop of typical difference weights of 0.73 and 0.27 (0.1
would make 87 % of the crops near 0/1, the mean g, 9.7, would leave every weight near 1/2).
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from fusion.methods.imagenet import imagenet_features

LAPLACIAN = torch.tensor([[1 / 8, 1 / 8, 1 / 8], [1 / 8, -1.0, 1 / 8], [1 / 8, 1 / 8, 1 / 8]])
VGG_SIZE = 224


@torch.no_grad()
def information(images: torch.Tensor) -> torch.Tensor:
    """The information g of each of (B, 1, H, W) images in [0, 1]: (B,)."""
    resized = F.interpolate(images, size=(VGG_SIZE, VGG_SIZE), mode="nearest")
    features = imagenet_features(resized * 2 - 1, 5)
    kernel = LAPLACIAN.to(images.device)[None]
    gradients = [kornia.filters.filter2d(f, kernel, border_type="constant") for f in features]
    return torch.stack([g.pow(2).mean((1, 2, 3)) for g in gradients]).mean(0)


def information_weights(a: torch.Tensor, b: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The adaptive weights (w_a, w_b), each (B,)."""
    weights = torch.softmax(torch.stack([information(a), information(b)], 1) / scale, 1)
    return weights[:, 0], weights[:, 1]


def dissimilarity(fused: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """1 - SSIM per image (B,)."""
    ssim = structural_similarity_index_measure(fused, source, data_range=1.0, reduction="none")
    return 1 - ssim


def u2fusion_loss(model, ir: torch.Tensor, vi: torch.Tensor, config) -> tuple[torch.Tensor, dict]:
    swap = torch.rand((), device=ir.device) < 0.5  # one order for the batch, as theirs; no read-back
    first, second = torch.where(swap, vi, ir), torch.where(swap, ir, vi)
    fused = model(first, second)
    w1, w2 = information_weights(first, second, config.information_scale)
    ssim_term = (w1 * dissimilarity(fused, first) + w2 * dissimilarity(fused, second)).mean()
    mse = lambda source: (fused - source).pow(2).mean((1, 2, 3))  # noqa: E731
    mse_term = (w1 * mse(first) + w2 * mse(second)).mean()
    total = ssim_term + config.mse_weight * mse_term
    return total, {"total": total.detach(), "ssim": ssim_term.detach(), "mse": mse_term.detach()}
