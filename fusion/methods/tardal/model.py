"""TarDAL's networks, as the authors' code builds them (module/fuse/generator.py and
discriminator.py):

- the generator: the two sources stacked, a 3x3 convolution to 32 maps, three densely connected
  3x3 convolutions of 32 maps (each with BatchNorm and ReLU, its output concatenated to its
  input), then 3x3 convolutions 128 -> 128 (ReLU) -> 64 -> 32 (BatchNorm, ReLU) -> 1 (tanh):
  296,577 parameters at width 32, Table 5's count, the only part that fuses;
- two discriminators (target and detail), used in training only: three 3x3 convolutions of
  stride 2 (32, 64, 128 maps, LeakyReLU 0.2) and a linear layer from the flattened maps of a
  crop to one score, so their size follows the crop size.

The generator fuses in eval mode (BatchNorm's running statistics), as the authors' inference.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_block(cin: int, cout: int, norm: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, padding=1)]
    return nn.Sequential(*layers, *([nn.BatchNorm2d(cout)] if norm else []), nn.ReLU())


class Generator(nn.Module):
    def __init__(self, channels: int = 32, dense_layers: int = 3):
        super().__init__()
        self.encoder = conv_block(2, channels)
        self.dense = nn.ModuleList(conv_block(channels * (i + 1), channels) for i in range(dense_layers))
        self.fuse = nn.Sequential(
            conv_block(channels * (dense_layers + 1), channels * 4, norm=False),
            conv_block(channels * 4, channels * 2),
            conv_block(channels * 2, channels),
            nn.Sequential(nn.Conv2d(channels, 1, 3, padding=1), nn.Tanh()),
        )

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        x = self.encoder(torch.cat([ir, vi], 1))
        for layer in self.dense:
            x = torch.cat([x, layer(x)], 1)
        return self.fuse(x)


class Discriminator(nn.Module):
    def __init__(self, channels: int = 32, size: int = 224):
        super().__init__()
        widths = (1, channels, channels * 2, channels * 4)
        self.conv = nn.Sequential(
            *(
                nn.Sequential(nn.Conv2d(a, b, 3, stride=2, padding=1), nn.LeakyReLU(0.2))
                for a, b in zip(widths, widths[1:], strict=False)
            )
        )
        self.linear = nn.Linear((size // 8) ** 2 * channels * 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.conv(x).flatten(1))


class TarDAL(nn.Module):
    def __init__(self, channels: int = 32, dense_layers: int = 3, crop_size: int = 224):
        super().__init__()
        self.generator = Generator(channels, dense_layers)
        self.target_critic = Discriminator(channels, crop_size)
        self.detail_critic = Discriminator(channels, crop_size)

    @classmethod
    def from_config(cls, config) -> TarDAL:
        return cls(config.channels, config.dense_layers, config.crop_size)

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return self.generator(ir, vi)

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return self.generator(ir, vi)

    def critics(self) -> list[nn.Parameter]:
        return [*self.target_critic.parameters(), *self.detail_critic.parameters()]
