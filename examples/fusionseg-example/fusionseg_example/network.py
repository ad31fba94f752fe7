"""``tinynet``: a three-layer network trained, like every learned method of the benchmark, on
the data root's training pairs by its one training loop (resume, the collapse guard, mixed
precision and DDP where the device allows). Its loss asks for the brighter source's intensity
and the stronger source's gradient at every pixel."""

from dataclasses import dataclass

import kornia
import torch
from torch import nn

from fusion.methods import register_method


@dataclass
class TinyNetConfig:
    """The ``tinynet:`` section of a benchmark config: the network's width and its recipe."""

    channels: int = 16
    gradient_weight: float = 10.0
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    crop_size: int = 64


def tinynet_loss(model, ir: torch.Tensor, vi: torch.Tensor, config: TinyNetConfig):
    """(loss, {term: value}) of a batch of (B, 1, h, w) crops in [0, 1]."""
    fused = model(ir, vi)
    intensity = (fused - torch.maximum(ir, vi)).abs().mean()
    grad = lambda x: kornia.filters.sobel(x)  # noqa: E731
    gradient = (grad(fused) - torch.maximum(grad(ir), grad(vi))).abs().mean()
    loss = intensity + config.gradient_weight * gradient
    return loss, {"total": loss.detach(), "intensity": intensity.detach(), "gradient": gradient.detach()}


@register_method("tinynet", display="TinyNet", config=TinyNetConfig, loss=tinynet_loss)
class TinyNet(nn.Module):
    """Built from the ``tinynet:`` section; ``forward(ir, vi)`` -> fused luminance in [0, 1]."""

    def __init__(self, config: TinyNetConfig):
        super().__init__()
        width = config.channels
        self.layers = nn.Sequential(
            nn.Conv2d(2, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.layers(torch.cat([ir, vi], dim=1)))
