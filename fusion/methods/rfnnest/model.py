"""RFN-Nest (Li, Wu and Kittler, Information Fusion 2021): a nest-connected auto-encoder and a
residual fusion network (RFN) that merges the two sources' features at every scale.

Architecture (the paper's section 3 and its figures; 7,524,249 parameters, as the SSPFusion paper's Table 5):

* ``ConvLayer``: reflection padding, convolution, ReLU (not on the output layer: see below).
* ``DenseBlockLight(c_in, c_out)``: a 3x3 ConvLayer to c_in/2 channels, then a 1x1 to c_out.
* Encoder: a 1x1 ConvLayer 1 -> 16, then four blocks of widths (64, 112, 160, 208), each after a
  2x2 max-pool except the first: features Φ^1..Φ^4 at scales 1, 1/2, 1/4, 1/8.
* Nest decoder (UNet++-style, no deep supervision): nodes x(i, j) = block(cat[Φ^i or x(i, 0..j-1),
  up(x(i+1, j-1))]) for x(1,1), x(2,1), x(1,2), x(3,1), x(2,2), x(1,3); the output is a 1x1
  ConvLayer 64 -> 1 (linear) on x(1,3). Up-sampling is nearest, x2.
* RFN block at scale m (c channels): Φ_f = conv3x3(cat[Φ_ir, Φ_vi]) + bottleneck(cat[conv3x3(Φ_ir),
  conv3x3(Φ_vi)]), bottleneck = 1x1 (2c -> c), 3x3, 3x3; every convolution a ConvLayer (ReLU).
  Four blocks, one per scale.

DECISION (image range): the networks see intensities in [0, 255], as the authors' code feeds
them; the feature-loss weights (1, 10, 100, 1000) and alpha = 700 were tuned on features of that
range. Images come in and go out in [0, 1]; ``intensity_scale`` converts.

Fusing follows the authors' test code: an image over 512 px on a side is fused in four
overlapping quarters (5 px of overlap, averaged), and the fused image is min-max rescaled to
[0, 1] (the decoder's raw output has the feature target's scale, several times an image's).

DECISION (output layer, ours): the authors' code puts a ReLU on the output layer too (the paper
does not say). Here it is linear: with that ReLU, the network of ``configs/msrs-cpu.yaml`` at
seed 0 starts dead (every output pre-activation negative, so a zero image and no gradient;
measured on msrs-test-40: stage 1's pixel MSE stayed at the images' mean square, 3,982, at lr
1e-3 and at the paper's 1e-4, and the training guard stopped it after 5 epochs). The min-max
rescaling that follows makes the ReLU's clipping moot when fusing.

DECISION (sizes, ours): the authors reflect-pad up-sampled maps to their skip's size; here each
image (or quarter) is reflect-padded once to a multiple of 8 (three poolings) and the output
cropped back, which gives the same sizes everywhere without per-node padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fusion.methods.learned import min_max


class ConvLayer(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, last: bool = False):
        """Reflection-padded ``kernel`` x ``kernel`` convolution, then ReLU unless ``last``."""
        layers = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel)]
        super().__init__(*layers, *([] if last else [nn.ReLU(inplace=True)]))


class DenseBlockLight(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        """3x3 ConvLayer to half the input width, then 1x1 ConvLayer to ``c_out``."""
        super().__init__(ConvLayer(c_in, c_in // 2, 3), ConvLayer(c_in // 2, c_out, 1))


class NestEncoder(nn.Module):
    def __init__(self, widths: list[int], stem: int = 16):
        """Stem 1x1 convolution and one block per scale, max-pooled between scales."""
        super().__init__()
        self.stem = ConvLayer(1, stem, 1)
        c_in = [stem, *widths[:-1]]
        self.blocks = nn.ModuleList(DenseBlockLight(a, b) for a, b in zip(c_in, widths, strict=True))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x, features = self.stem(image), []
        for scale, block in enumerate(self.blocks):
            x = block(x if scale == 0 else F.max_pool2d(x, 2))
            features.append(x)
        return features


class NestDecoder(nn.Module):
    def __init__(self, widths: list[int]):
        """Nodes x(i, j) for i + j <= 4 (scales counted from 1), then the output layer."""
        super().__init__()
        w = widths
        self.x11 = DenseBlockLight(w[0] + w[1], w[0])
        self.x21 = DenseBlockLight(w[1] + w[2], w[1])
        self.x31 = DenseBlockLight(w[2] + w[3], w[2])
        self.x12 = DenseBlockLight(2 * w[0] + w[1], w[0])
        self.x22 = DenseBlockLight(2 * w[1] + w[2], w[1])
        self.x13 = DenseBlockLight(3 * w[0] + w[1], w[0])
        self.out = ConvLayer(w[0], 1, 1, last=True)

    def forward(self, f: list[torch.Tensor]) -> torch.Tensor:
        up = lambda x: F.interpolate(x, scale_factor=2.0, mode="nearest")  # noqa: E731
        x11 = self.x11(torch.cat([f[0], up(f[1])], 1))
        x21 = self.x21(torch.cat([f[1], up(f[2])], 1))
        x12 = self.x12(torch.cat([f[0], x11, up(x21)], 1))
        x31 = self.x31(torch.cat([f[2], up(f[3])], 1))
        x22 = self.x22(torch.cat([f[1], x21, up(x31)], 1))
        x13 = self.x13(torch.cat([f[0], x11, x12, up(x22)], 1))
        return self.out(x13)


class ResidualFusionBlock(nn.Module):
    def __init__(self, channels: int):
        """One RFN: a direct fused path plus a residual bottleneck on per-source convolutions."""
        super().__init__()
        self.direct = ConvLayer(2 * channels, channels, 3)
        self.conv_ir = ConvLayer(channels, channels, 3)
        self.conv_vi = ConvLayer(channels, channels, 3)
        self.bottleneck = nn.Sequential(
            ConvLayer(2 * channels, channels, 1),
            ConvLayer(channels, channels, 3),
            ConvLayer(channels, channels, 3),
        )

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        residual = self.bottleneck(torch.cat([self.conv_ir(ir), self.conv_vi(vi)], 1))
        return self.direct(torch.cat([ir, vi], 1)) + residual


class RFNNest(nn.Module):
    def __init__(
        self, widths: list[int] = (64, 112, 160, 208), stem: int = 16, intensity_scale: float = 255.0
    ):
        """Nest auto-encoder (stage 1) and one residual fusion block per scale (stage 2)."""
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"RFN-Nest has four scales, got widths {list(widths)}")
        self.encoder = NestEncoder(list(widths), stem)
        self.decoder = NestDecoder(list(widths))
        self.rfn = nn.ModuleList(ResidualFusionBlock(c) for c in widths)
        self.intensity_scale = intensity_scale

    @classmethod
    def from_config(cls, config) -> RFNNest:
        return cls(config.widths, config.stem, config.intensity_scale)

    multiple = 8  # three 2x2 poolings

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Multi-scale features of a [0, 1] image whose sides are multiples of 8."""
        return self.encoder(image * self.intensity_scale)

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """An image on the [0, 1] scale from multi-scale features (not clamped nor rescaled)."""
        return self.decoder(features) / self.intensity_scale

    def merge(self, f_ir: list[torch.Tensor], f_vi: list[torch.Tensor]) -> list[torch.Tensor]:
        return [block(a, b) for block, a, b in zip(self.rfn, f_ir, f_vi, strict=True)]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Stage 1 pass: the image through the auto-encoder."""
        return self.decode(self.encode(image))

    tile_above = 512  # the authors fuse larger images in four quarters

    @property
    def rescale_epsilon(self) -> float:
        """The authors' 1e-5 of min-max rescaling, on their [0, 255] scale."""
        return 1e-5 / self.intensity_scale

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        """Fused luminance in [0, 1] (min-max rescaled per image) from infrared and visible
        luminance (B, 1, H, W) of any size."""
        height, width = ir.shape[-2:]
        if max(height, width) <= self.tile_above:
            fused = self.fuse_raw(ir, vi)
        else:
            fused = torch.zeros_like(ir)
            count = torch.zeros_like(ir)
            for rows, cols in quarters(height, width):
                fused[..., rows, cols] += self.fuse_raw(ir[..., rows, cols], vi[..., rows, cols])
                count[..., rows, cols] += 1
            fused = fused / count
        return min_max(fused, epsilon=self.rescale_epsilon)

    def fuse_raw(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        """The decoder's output for one image (or quarter), not rescaled."""
        height, width = ir.shape[-2:]
        pad = (0, -width % self.multiple, 0, -height % self.multiple)
        ir, vi = F.pad(ir, pad, mode="reflect"), F.pad(vi, pad, mode="reflect")
        fused = self.decode(self.merge(self.encode(ir), self.encode(vi)))
        return fused[..., :height, :width]


def quarters(height: int, width: int) -> list[tuple[slice, slice]]:
    """The four overlapping quarters the authors cut a large image into: each reaches 3 px past
    the centre line, the next starts 2 px before it."""
    h, w = height // 2, width // 2
    top, bottom = slice(0, h + 3), slice(h - 2, height)
    left, right = slice(0, w + 3), slice(w - 2, width)
    return [(top, left), (top, right), (bottom, left), (bottom, right)]
