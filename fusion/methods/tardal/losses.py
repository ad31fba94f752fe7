"""TarDAL's losses (fusion-only training, the authors' pipeline/fuse.py with tardal-dt.yaml):

    generator:  0.8 (w_I L(F, I) + w_V L(F, V)) + 0.2 (0.5 (-D_t(F m)) + 0.5 (-D_d(∇F)))
    target discriminator D_t:  -D_t(I m) + D_t(F m) + 2 div(D_t)
    detail discriminator D_d:  -D_d(∇V) + D_d(∇F) + 2 div(D_d)

L is kornia's MS-SSIM loss (their ``src_fn: v1``); m the saliency mask of the infrared image;
∇ the Sobel gradient magnitude (sqrt(dx² + dy² + 1e-8)); div the WGAN-div penalty (Wu et al.
2018): the mean of ||∇_x D(x)||^6 at random interpolations x of the real and fake samples (k 2,
p 6). w_I, w_V weigh each source by its information: the mean over the batch of a map that
averages the channel means of five feature maps of a pretrained ImageNet network, upsampled to
the image and stored as 8 bits (clipped to [0, 1]). The adversarial term is left out for the first
``warmup_epochs`` (their ``d_warm`` 10): the discriminators learn first. The detail discriminator
sees whole gradients (``d_mask: false`` in their v1 configs). Fake samples for the discriminators
come from the generator in eval mode, as theirs.

DECISION (ours), where what the authors use cannot be had offline:

- the mask m: their U2-Net saliency of the infrared image (weights downloaded from their release)
  becomes the histogram-contrast saliency of the infrared crop (fusion/methods/saliency.py), min-max
  normalised as their masks are: warm objects on a cooler background stand out in both;
- the information maps: VGG-16's five blocks become the packaged EfficientNet-Lite0's five stages
  (fusion/methods/imagenet.py), computed on each training crop (theirs on each image resized to
  672 x 672 before training).

DECISION (ours), on the optimisation: the generator and both discriminators step together on the
sum of their losses, each network's gradient only from its own loss (the discriminators' weights
are held while the generator's term is computed, the fake samples detached), where the authors
step three times per batch, and where their generator step also moves the discriminators (one
optimiser over all three networks): the paper's min-max game, in one step.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import cache

import kornia
import torch
import torch.nn.functional as F

from fusion.methods.imagenet import imagenet_features
from fusion.methods.saliency import saliency

DIV_K, DIV_P = 2.0, 6


@cache
def _ms_ssim_loss(device: str) -> torch.nn.Module:
    return kornia.losses.MS_SSIMLoss().to(device)


def source_loss(fused: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    return _ms_ssim_loss(str(fused.device))(fused, source)


def gradient(x: torch.Tensor) -> torch.Tensor:
    d = kornia.filters.spatial_gradient(x, "sobel")
    return torch.sqrt(d[:, :, 0].pow(2) + d[:, :, 1].pow(2) + 1e-8)


def infrared_mask(ir: torch.Tensor) -> torch.Tensor:
    """The target mask of each infrared crop: its saliency, min-max normalised to [0, 1]."""
    maps = saliency(ir)
    low, high = maps.amin((1, 2, 3), keepdim=True), maps.amax((1, 2, 3), keepdim=True)
    return (maps - low) / (high - low).clamp_min(1e-12)


@torch.no_grad()
def information_weight(images: torch.Tensor) -> torch.Tensor:
    """The batch's mean information (0-d): the channel means of five feature maps, upsampled to
    the images' size and averaged, stored as 8 bits."""
    features = imagenet_features(images * 2 - 1, 5)
    size = images.shape[-2:]
    maps = [F.interpolate(f.mean(1, keepdim=True), size=size, mode="bilinear") for f in features]
    stored = torch.floor(torch.stack(maps).mean(0).clamp(0, 1) * 255) / 255
    return stored.mean()


def divergence(critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The WGAN-div penalty: mean ||∇_x D(x)||^p at random interpolations of real and fake."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    score = critic(mixed)
    (grad,) = torch.autograd.grad(score, mixed, torch.ones_like(score), create_graph=True)
    return ((grad.flatten(1) + 1e-6).norm(2, dim=1) ** DIV_P).mean()


def critic_loss(critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return -critic(real).mean() + critic(fake).mean() + DIV_K * divergence(critic, real, fake)


@contextmanager
def held(parameters: list[torch.nn.Parameter]):
    """No gradient reaches ``parameters`` from what is computed inside."""
    flags = [p.requires_grad for p in parameters]
    for p in parameters:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(parameters, flags, strict=True):
            p.requires_grad_(flag)


def tardal_loss(
    model, ir: torch.Tensor, vi: torch.Tensor, config, adversarial: bool
) -> tuple[torch.Tensor, dict]:
    mask = infrared_mask(ir)
    fused = model(ir, vi)
    source = information_weight(ir) * source_loss(fused, ir) + information_weight(vi) * source_loss(fused, vi)
    with held(model.critics()):
        target = -model.target_critic(fused * mask).mean()
        detail = -model.detail_critic(gradient(fused)).mean()
    generator = config.source_weight * source
    if adversarial:
        generator = generator + config.adversarial_weight * (
            config.target_weight * target + config.detail_weight * detail
        )
    model.generator.eval()
    with torch.no_grad():
        fake = model.generator(ir, vi)
    model.generator.train()
    critics = critic_loss(model.target_critic, ir * mask, fake * mask) + critic_loss(
        model.detail_critic, gradient(vi), gradient(fake)
    )
    total = generator + critics
    terms = {"source": source, "target": target, "detail": detail, "critics": critics}
    return total, {"total": total.detach(), **{name: value.detach() for name, value in terms.items()}}
