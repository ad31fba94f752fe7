"""DIDFuse (Zhao et al., IJCAI 2020): an auto-encoder whose encoder splits an image into a
background (low-frequency) and a detail (high-frequency) feature map; fusion merges the maps of
the two sources and decodes them.

Architecture (the paper's network figure and table; 260,935 parameters, as the SSPFusion paper's Table 5):

    encoder  conv1  1 -> 64   3x3, BN, PReLU            -> shallow skip  (F1)
             conv2 64 -> 64   3x3, BN, PReLU            -> middle skip   (F2)
             base  64 -> 64   3x3, BN, tanh             -> background map B
             detail 64 -> 64  3x3, BN, tanh             -> detail map D
    decoder  merge [B, D] 128 -> 64  3x3, BN, PReLU
             up   [x, F2] 128 -> 64  3x3, BN, PReLU
             out  [x, F1] 128 -> 1   3x3, BN, sigmoid

Every convolution is 3x3 with stride 1 and keeps the image size: the first and the last are
reflection-padded, the four between zero-padded, as the authors' code builds them (the paper
does not say; with the authors' weights loaded, reflection everywhere changes the fused image's
borders by up to 68/255).

DECISION (the paper's table lists the layers but not every normalisation): the output layer has
a one-channel BatchNorm before the sigmoid, as in the authors' public code; it is what makes the
count 260,935 (without it, 260,933).

DECISION (fusion rule): the paper offers summation, averaging and an l1-norm weighting
of the feature maps; the default is summation of every map (B, D and both skips), as the authors'
test code runs it. ``fusion_rule`` chooses (:func:`fusion.methods.learned.combine`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from fusion.methods.learned import combine


class Decomposition(NamedTuple):
    """What the encoder gives for one image: two skip features and the two feature maps."""

    shallow: torch.Tensor
    middle: torch.Tensor
    base: torch.Tensor
    detail: torch.Tensor


def conv_unit(c_in: int, c_out: int, activation: nn.Module, reflect: bool = False) -> nn.Sequential:
    """3x3 convolution (reflection-padded if ``reflect``, else zero-padded), BatchNorm, activation."""
    padding = (
        [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3)]
        if reflect
        else [nn.Conv2d(c_in, c_out, 3, padding=1)]
    )
    return nn.Sequential(*padding, nn.BatchNorm2d(c_out), activation)


class DIDFuseEncoder(nn.Module):
    def __init__(self, channels: int = 64):
        """Two shared layers, then the background and detail branches (tanh-bounded maps)."""
        super().__init__()
        self.conv1 = conv_unit(1, channels, nn.PReLU(), reflect=True)
        self.conv2 = conv_unit(channels, channels, nn.PReLU())
        self.base = conv_unit(channels, channels, nn.Tanh())
        self.detail = conv_unit(channels, channels, nn.Tanh())

    def forward(self, image: torch.Tensor) -> Decomposition:
        shallow = self.conv1(image)
        middle = self.conv2(shallow)
        return Decomposition(shallow, middle, self.base(middle), self.detail(middle))


class DIDFuseDecoder(nn.Module):
    def __init__(self, channels: int = 64):
        """Merge background and detail, then add the middle and the shallow skip features."""
        super().__init__()
        self.merge = conv_unit(2 * channels, channels, nn.PReLU())
        self.up = conv_unit(2 * channels, channels, nn.PReLU())
        self.out = conv_unit(2 * channels, 1, nn.Sigmoid(), reflect=True)

    def forward(self, parts: Decomposition) -> torch.Tensor:
        x = self.merge(torch.cat([parts.base, parts.detail], 1))
        x = self.up(torch.cat([x, parts.middle], 1))
        return self.out(torch.cat([x, parts.shallow], 1))


class DIDFuse(nn.Module):
    def __init__(self, channels: int = 64, fusion_rule: str = "sum"):
        """The auto-encoder; ``fusion_rule`` (sum | average | l1_norm) merges two images' maps."""
        super().__init__()
        self.encoder = DIDFuseEncoder(channels)
        self.decoder = DIDFuseDecoder(channels)
        self.fusion_rule = fusion_rule

    @classmethod
    def from_config(cls, config) -> DIDFuse:
        return cls(config.channels, config.fusion_rule)

    def forward(self, image: torch.Tensor) -> tuple[Decomposition, torch.Tensor]:
        """Training pass on one image batch: its decomposition and its reconstruction."""
        parts = self.encoder(image)
        return parts, self.decoder(parts)

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        """Fused luminance in [0, 1] from infrared and visible luminance (B, 1, H, W)."""
        a, b = self.encoder(ir), self.encoder(vi)
        merged = Decomposition(*(combine(x, y, self.fusion_rule) for x, y in zip(a, b, strict=True)))
        return self.decoder(merged)
