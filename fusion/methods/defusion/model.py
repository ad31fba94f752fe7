"""DeFusion's network, as the authors' code builds it (models/UCSharedModelProCommon.py, with their
ResNeSt layers: models/resnet.py, models/splat.py), without any normalisation layer:

- one encoder shared by both sources: a 3x3 convolution (3 -> 16 maps), a ResNeSt layer of 6
  blocks (width 8), 3x3 max pooling of stride 2, ResNeSt layers of 6, 4 and 4 blocks (widths 16,
  32 and 64; the last two of stride 2): features at 1/2, 1/4 and 1/8 of the image;
- a common encoder (4 blocks, width 256) over both sources' deepest features;
- three decoders, for the common part (2 blocks per layer) and for each source's unique part (4,
  4, 6, 6 blocks; the two unique decoders are one set of weights), each of four ResNeSt layers
  with bilinear 2x upsampling between them (then nearest resizing to the skip's size) and skip
  connections from the encoder; one 3x3 projection to three channels (ReLU) makes the images of
  all three (the common decoder's own projection is registered but never called, as in theirs);
- the fused image: a 3x3 convolution (16 -> 3, ReLU) of the sum of the three decoders' last
  features.

A ResNeSt block is a bottleneck (1x1, a 3x3 split-attention convolution of radix 2 (timm's
``SplitAttn``), 1x1 to four times the width, residual, ReLU; the first block of an encoder layer
average-pools 3x3 after its split attention, of its stride). 7,874,473 parameters, Table 5's
count with the unused projection (435), the authors' released model (models/UCTestShareModelProCommon.py).
Weights start from a normal of std sqrt(2 / (k² out)), as theirs.

DECISION (ours): the two 3x3 projections to images start as mid-grey (zero weights, bias 1/2).
With the authors' initialisation and no normalisation the fresh network's images hold values in
the hundreds, which the training loop refuses before the first step (its inputs are in [0, 1]);
from mid-grey the first steps train them (a zero bias would leave their ReLU without gradient).

DECISION (authors' released model): their training script builds a larger common decoder (4, 4,
6, 6 blocks, 8,043,817 parameters) whose forward pass feeds 1,024 maps to a layer built for 1,536;
the model they test and release, and Table 5, are the one built here.

Fusing follows their test script: the infrared image first, each source grey as three equal
channels, reflection-padded by 16 pixels and the padding cut from the fused image, whose three
channels are averaged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import SplitAttn
from torch import nn

EXPANSION = 4
PAD = 16


class Bottleneck(nn.Module):
    def __init__(
        self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None, pool: bool = False
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.conv2 = SplitAttn(
            width,
            width,
            3,
            stride=1 if pool else stride,
            padding=1,
            radix=2,
            rd_channels=max(width // 2, 32) // 2,
        )
        self.pool = nn.AvgPool2d(3, stride, padding=1) if pool else nn.Identity()
        self.conv3 = nn.Conv2d(width, width * EXPANSION, 1, bias=False)
        self.downsample = downsample or nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.pool(self.conv2(self.relu(self.conv1(x)))))
        return self.relu(out + self.downsample(x))


def resnest_layer(
    cin: int,
    width: int,
    blocks: int,
    stride: int = 1,
    first: bool = True,
    avd: bool = True,
    avg_down: bool = True,
) -> nn.Sequential:
    """The authors' ``ResNestLayer``: ``blocks`` bottlenecks from ``cin`` to 4 x ``width`` maps."""
    downsample = None
    if stride != 1 or cin != width * EXPANSION:
        conv = nn.Conv2d(cin, width * EXPANSION, 1, stride=1 if avg_down else stride, bias=False)
        pool = [nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)] if avg_down else []
        downsample = nn.Sequential(*pool, conv)
    layers = [Bottleneck(cin, width, stride, downsample, pool=avd and (stride > 1 or first))]
    layers += [Bottleneck(width * EXPANSION, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def decoder_layer(cin: int, width: int, blocks: int) -> nn.Sequential:
    return resnest_layer(cin, width, blocks, avd=False, avg_down=False)


class Decoder(nn.Module):
    """Four ResNeSt layers, 2x bilinear upsampling after the first three (then resized to the
    skip's size), the encoder's skips joined before the second and third; returns its last
    features."""

    def __init__(self, widths: tuple[int, ...], blocks: tuple[int, ...], inputs: tuple[int, ...]):
        super().__init__()
        self.layers = nn.ModuleList(
            decoder_layer(c, w, b) for c, w, b in zip(inputs, widths, blocks, strict=True)
        )
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")

    def forward(self, x: torch.Tensor, skips: list[tuple[torch.Tensor, ...]], size) -> torch.Tensor:
        for layer, skip in zip(self.layers[:2], skips, strict=True):
            x = F.interpolate(self.up(layer(x)), size=skip[0].shape[2:])
            x = torch.cat([x, *skip], 1)
        x = F.interpolate(self.up(self.layers[2](x)), size=size)
        return self.layers[3](x)


def projection() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(16, 3, 3, padding=1), nn.ReLU())


UNUSED_PARAMETERS = 16 * 3 * 9 + 3  # the common decoder's projection


class DeFusion(nn.Module):
    def __init__(self, fused_start: float = 17000):
        """``fused_start``: the optimiser step from which its loss trains the fused image."""
        super().__init__()
        self.fused_start = fused_start
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), resnest_layer(16, 8, 6))
        self.pool = nn.MaxPool2d(3, 2, padding=1)
        self.encoder = nn.ModuleList(
            [resnest_layer(32, 16, 6, first=False), resnest_layer(64, 32, 4, 2), resnest_layer(128, 64, 4, 2)]
        )
        self.common_encoder = resnest_layer(512, 256, 4, first=False)
        self.common_decoder = Decoder((64, 16, 4, 4), (2, 2, 2, 2), (1536, 512, 192, 16))
        self.unique_decoder = Decoder((96, 32, 16, 4), (4, 4, 6, 6), (1280, 512, 192, 64))
        self.projection = projection()
        self.fusion_head = projection()
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # the loss's schedule reads it
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                module.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
        for module in self.modules():  # DECISION (ours): see the module docstring
            if isinstance(module, Bottleneck):
                nn.init.zeros_(module.conv3.weight)
        for head in (self.projection, self.fusion_head):
            nn.init.zeros_(head[0].weight)
            nn.init.constant_(head[0].bias, 0.5)

    @classmethod
    def from_config(cls, config) -> DeFusion:
        from fusion.methods.defusion.losses import THRESHOLDS

        return cls(THRESHOLDS["fused"] * config.schedule_scale)

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(features at full size, [at 1/2, 1/4, 1/8])."""
        stem = self.stem(image)
        x, features = self.pool(stem), []
        for layer in self.encoder:
            x = layer(x)
            features.append(x)
        return stem, features

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(common, unique of a, unique of b, fused), each (B, 3, H, W), of 3-channel images."""
        (stem, fa), (_, fb) = self.encode(a), self.encode(b)
        size = stem.shape[2:]
        common = self.common_encoder(torch.cat([fa[2], fb[2]], 1))
        c = self.common_decoder(torch.cat([common, fa[2], fb[2]], 1), [(fa[1], fb[1]), (fa[0], fb[0])], size)
        u_a = self.unique_decoder(torch.cat([common, fa[2]], 1), [(fa[1],), (fa[0],)], size)
        u_b = self.unique_decoder(torch.cat([common, fb[2]], 1), [(fb[1],), (fb[0],)], size)
        fused = self.fusion_head(u_a + u_b + c)
        return self.projection(c), self.projection(u_a), self.projection(u_b), fused

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        pad = min(PAD, *(size - 1 for size in ir.shape[2:]))  # reflection needs a wider image
        padded = lambda x: F.pad(x.expand(-1, 3, -1, -1), (pad,) * 4, mode="reflect")  # noqa: E731
        fused = self(padded(ir), padded(vi))[3]
        fused = fused[..., pad : fused.shape[2] - pad, pad : fused.shape[3] - pad]
        return fused.mean(1, keepdim=True)
