"""U2Fusion's network, as the authors' code builds it (their Net.py): the two sources stacked as
two channels, a 3x3 convolution and five densely connected 3x3 convolutions of 44 maps each
(every layer's output concatenated to its input), then four 3x3 convolutions 264 -> 128 -> 64 ->
32 -> 1. Every convolution pads by reflection; LeakyReLU 0.2 after each but the last, whose output
goes through tanh / 2 + 1/2. Weights start from a normal of std 0.05 truncated at two std,
biases at 0. 659,217 parameters at 44 maps, Table 5's count.

The authors' test script feeds the visible image first: ``fuse(ir, vi)`` is ``self(vi, ir)``.
"""

from __future__ import annotations

import torch
from torch import nn

DECODER = (128, 64, 32)


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect")
    nn.init.trunc_normal_(conv.weight, std=0.05, a=-0.1, b=0.1)
    nn.init.zeros_(conv.bias)
    return conv


class U2Fusion(nn.Module):
    def __init__(self, channels: int = 44, dense_layers: int = 5):
        super().__init__()
        self.first = conv3x3(2, channels)
        self.dense = nn.ModuleList(conv3x3(channels * (i + 1), channels) for i in range(dense_layers))
        widths = (channels * (dense_layers + 1), *DECODER)
        self.decoder = nn.ModuleList(conv3x3(a, b) for a, b in zip(widths, widths[1:], strict=False))
        self.out = conv3x3(DECODER[-1], 1)
        self.act = nn.LeakyReLU(0.2)

    @classmethod
    def from_config(cls, config) -> U2Fusion:
        return cls(config.channels)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        x = self.act(self.first(torch.cat([first, second], 1)))
        for layer in self.dense:
            x = torch.cat([self.act(layer(x)), x], 1)
        for layer in self.decoder:
            x = self.act(layer(x))
        return torch.tanh(self.out(x)) / 2 + 0.5

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return self(vi, ir)
