"""UMF's fusion network (Wang et al., "Unsupervised misaligned infrared and visible image fusion
via cross-modality image generation and registration", IJCAI 2022): the dual-path interaction
fusion network that follows its registration network. Only the fusion part is built here: the
benchmark's pairs are registered already, so neither the registration network nor the
pseudo-infrared generator takes part. 629,253 parameters at 64 channels, as the SSPFusion
paper's Table 5.

Architecture (the paper's fusion-network figure; details from the authors' code):

* one head per source: 3x3 convolution 1 -> c (bias), LeakyReLU 0.2;
* one residual dense block per source: three dense layers (3x3 convolution without bias to
  ``growth`` = c channels, ReLU, concatenated to their input), a 1x1 convolution (no bias)
  back to c, plus the block's input;
* the interactive fusion module: query and key 3x3 convolutions (c -> c) of the infrared and
  the visible features, attention = sigmoid(query x key); each source's features become
  a x F + b x (attention F), where (a, b) are two maps a 3x3 convolution draws from
  [F, attention F] (one convolution per source);
* a 3x3 convolution 2c -> c of the two, a 3x3 convolution c -> 1 and tanh.

Every convolution zero-pads to keep the size. The output's tanh range [-1, 1] is clamped to
[0, 1] when fusing, as the authors' test code does when it writes the image as 8 bits.
"""

from __future__ import annotations

import torch
from torch import nn


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int):
        """3x3 convolution (no bias) to ``growth`` channels, ReLU, concatenated to the input."""
        super().__init__()
        self.conv = nn.Conv2d(c_in, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.relu(self.conv(x))], 1)


class ResidualDenseBlock(nn.Module):
    def __init__(self, channels: int, layers: int, growth: int):
        """``layers`` dense layers, a 1x1 convolution back to ``channels``, plus the input."""
        super().__init__()
        self.dense = nn.Sequential(*(DenseLayer(channels + i * growth, growth) for i in range(layers)))
        self.squeeze = nn.Conv2d(channels + layers * growth, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.squeeze(self.dense(x)) + x


class InteractiveFusion(nn.Module):
    def __init__(self, channels: int):
        """Cross-attention of the two sources' features and a learned mix per source."""
        super().__init__()
        self.query = nn.Conv2d(channels, channels, 3, padding=1)
        self.key = nn.Conv2d(channels, channels, 3, padding=1)
        self.mix_ir = nn.Conv2d(2 * channels, 2, 3, padding=1)
        self.mix_vi = nn.Conv2d(2 * channels, 2, 3, padding=1)

    @staticmethod
    def _mix(features: torch.Tensor, attended: torch.Tensor, mix: nn.Conv2d) -> torch.Tensor:
        weights = mix(torch.cat([features, attended], 1))
        return features * weights[:, 0:1] + attended * weights[:, 1:2]

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attention = torch.sigmoid(self.query(ir) * self.key(vi))
        return self._mix(ir, ir * attention, self.mix_ir), self._mix(vi, vi * attention, self.mix_vi)


class UMF(nn.Module):
    def __init__(self, channels: int = 64, dense_layers: int = 3):
        """Per-source head and residual dense block, interactive fusion, reconstruction."""
        super().__init__()
        head = lambda: nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.LeakyReLU(0.2))  # noqa: E731
        self.head_ir, self.head_vi = head(), head()
        self.block_ir = ResidualDenseBlock(channels, dense_layers, channels)
        self.block_vi = ResidualDenseBlock(channels, dense_layers, channels)
        self.interact = InteractiveFusion(channels)
        self.merge = nn.Conv2d(2 * channels, channels, 3, padding=1)
        self.out = nn.Conv2d(channels, 1, 3, padding=1)

    @classmethod
    def from_config(cls, config) -> UMF:
        return cls(config.channels, config.dense_layers)

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        """The fused luminance in [-1, 1] (tanh) from (B, 1, H, W) luminance in [0, 1]."""
        f_ir = self.block_ir(self.head_ir(ir))
        f_vi = self.block_vi(self.head_vi(vi))
        f_ir, f_vi = self.interact(f_ir, f_vi)
        return torch.tanh(self.out(self.merge(torch.cat([f_ir, f_vi], 1))))

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        """Fused luminance of any size (the caller clamps to [0, 1])."""
        return self(ir, vi)
