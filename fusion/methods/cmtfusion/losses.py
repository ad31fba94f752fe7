"""CMTFusion's training loss, as the authors' code computes it, on images in [-1, 1]:

    L = L_int / 6 + 0.8 L_spa + 0.02 L_per + 0.05 L_fre

* L_int: MSE of each of the three outputs (sizes 1, 1/2, 1/4) to both sources at that size
  (bilinear halving), six terms summed;
* L_spa: the spatial-consistency loss of Zero-DCE (Guo et al. 2020) between the fused image and
  each source (weights 0.5, 0.5): squared differences of the four neighbour differences of the
  4x4-averaged images (zero-padded);
* L_per: a perceptual term, weights 0.5 and 0.5 to the two sources: l1 distances of three
  feature maps of a pretrained ImageNet network (the authors': VGG-19 up to relu1_2, relu2_2 and
  relu3_2);
* L_fre: a focal-frequency loss to both sources: per frequency, the squared distance of the
  fused image's 2-D FFT (orthonormal) to each source's, weighted by each distance's share of the
  two (distances normalised by their maximum, detached). The authors' code scales real parts by
  Gaussians of the frequency radius in place on aliased tensors: the fused spectrum's real part
  ends up scaled by both Gaussians (sigma 2 and 1), the visible one's by sigma 2, the infrared
  one's by sigma 1, and the distances are taken on those scaled spectra; that is what is
  computed here.

DECISION (ours): VGG-19's ImageNet weights cannot be had offline; ``perceptual: efficientnet``
takes the first three stages (strides 2, 4, 8) of the packaged EfficientNet-Lite0
(fusion/methods/imagenet.py; its input convention is [-1, 1], the range the authors feed VGG),
``perceptual: none`` leaves the term out. A frequency where both
distances are 0 gets the weights 1/2 each (the authors' code divides 0 by 0 there).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from fusion.methods.imagenet import imagenet_features


def intensity_loss(outputs: list[torch.Tensor], vi: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    total = torch.zeros((), device=vi.device)
    for output in outputs:
        total = total + F.mse_loss(output, vi) + F.mse_loss(output, ir)
        vi = F.interpolate(vi, scale_factor=0.5, mode="bilinear")
        ir = F.interpolate(ir, scale_factor=0.5, mode="bilinear")
    return total


def spatial_consistency(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Zero-DCE's L_spa map of two images (mean over channels, 4x4 average pooling)."""
    kernels = torch.zeros(4, 1, 3, 3, device=x.device)
    for k, (row, col) in enumerate(((1, 0), (1, 2), (0, 1), (2, 1))):  # left, right, up, down
        kernels[k, 0, 1, 1], kernels[k, 0, row, col] = 1.0, -1.0
    pooled = [F.avg_pool2d(z.mean(1, keepdim=True), 4) for z in (x, y)]
    differences = [F.conv2d(p, kernels, padding=1) for p in pooled]
    return (differences[0] - differences[1]).pow(2).sum(1, keepdim=True)


@functools.cache
def radial_gaussian(height: int, width: int, sigma: float, device) -> torch.Tensor:
    """The authors' Gaussian of the frequency radius, ifftshifted (their meshgrid's (w, h)
    array read as (h, w), which is the same for the square crops they train on). Made once per
    size and device: a copy from host memory in every step would make a GPU wait."""
    x, y = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width))
    g = np.exp(-(np.sqrt(x * x + y * y) ** 2) / (2.0 * sigma**2))
    return torch.tensor(np.fft.ifftshift(g).reshape(height, width), dtype=torch.float32, device=device)


def frequency_loss(fused: torch.Tensor, vi: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    height, width = fused.shape[-2:]
    g_vi = radial_gaussian(height, width, 2.0, fused.device)
    g_ir = radial_gaussian(height, width, 1.0, fused.device)

    def spectrum(z: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """(real part x gain, imaginary part) of the orthonormal 2-D FFT, stacked last."""
        transform = torch.fft.fft2(z, norm="ortho")
        return torch.stack([transform.real * gain, transform.imag], -1)

    f, t_vi, t_ir = spectrum(fused, g_vi * g_ir), spectrum(vi, g_vi), spectrum(ir, g_ir)
    distance_vi = (f - t_vi).pow(2).sum(-1)
    distance_ir = (f - t_ir).pow(2).sum(-1)

    def weight(distance: torch.Tensor) -> torch.Tensor:
        magnitude = distance.sqrt()
        peak = magnitude.amax(dim=(-2, -1), keepdim=True)
        return torch.nan_to_num(magnitude / peak, nan=0.0).clamp(0, 1).detach()

    w_vi, w_ir = weight(distance_vi), weight(distance_ir)
    total = w_vi + w_ir
    share_vi = torch.where(total > 0, w_vi / total.clamp_min(1e-12), torch.full_like(total, 0.5))
    return (share_vi * distance_vi + (1 - share_vi) * distance_ir).mean()


def perceptual_features(x: torch.Tensor) -> list[torch.Tensor]:
    """EfficientNet-Lite0's features at strides 2, 4 and 8 of a grey [-1, 1] image."""
    return imagenet_features(x, 3)


def perceptual_loss(fused: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        targets = perceptual_features(source)
    return sum(F.l1_loss(a, b) for a, b in zip(perceptual_features(fused), targets, strict=True))


def cmtfusion_loss(model, ir: torch.Tensor, vi: torch.Tensor, config) -> tuple[torch.Tensor, dict]:
    """The loss of one batch of [0, 1] crops (converted to the network's [-1, 1])."""
    ir, vi = ir * 2 - 1, vi * 2 - 1
    outputs = model(vi, ir)
    fused = outputs[0]
    terms = {
        "intensity": intensity_loss(outputs, vi, ir) / 6,
        "spatial": 0.5 * spatial_consistency(fused, vi).mean() + 0.5 * spatial_consistency(fused, ir).mean(),
        "frequency": frequency_loss(fused, vi, ir),
    }
    total = (
        terms["intensity"]
        + config.spatial_weight * terms["spatial"]
        + config.frequency_weight * terms["frequency"]
    )
    if config.perceptual != "none":
        terms["perceptual"] = 0.5 * perceptual_loss(fused, vi) + 0.5 * perceptual_loss(fused, ir)
        total = total + config.perceptual_weight * terms["perceptual"]
    return total, {"total": total.detach(), **{name: value.detach() for name, value in terms.items()}}
