"""CMTFusion (Park, Vien and Lee, "Cross-modal transformers for infrared and visible image fusion",
IEEE TMM 2024), as the authors' code computes it. Images enter and leave in [-1, 1] (their
``Normalize(0.5, 0.5)``); :meth:`CMTFusion.fuse` converts from and to [0, 1].

* Edge weights: each source's gradient magnitude (kornia's ``diff`` kernel), 3x3 max-pooled,
  as its share of the two, mapped to [-1, 1]; each source enters with its edge weight as a
  second channel.
* Per source, three scales: a 3x3 convolution 2 -> c, two stride-2 3x3 convolutions (GELU);
  at each scale a 1x1 convolution and a residual feature distillation block (RFDB, Liu et al.
  2020: three distillation steps, a 3x3 step, a 1x1 merge and enhanced spatial attention).
* Coarse to fine, a cross-modal transformer stage per scale: gates g = sigmoid(conv(F_V + F_I))
  for each source (normalised against each other, in the authors' order), then each source's
  features are re-weighted by their *irrelevance* to the other's gated features, along channels
  and along positions, merged by a 1x1 convolution. A finer scale starts from its own features
  concatenated with the up-sampled (transposed convolution, GELU) output of the coarser stage.
* A reconstruction head per scale (1x1 64 -> 32, grouped 3x3 32 -> 128 and 128 -> 128 with GELU,
  grouped 1x1 128 -> 32, 1x1 32 -> 1, tanh): the fused image at 1, 1/2 and 1/4 of the size.

Kept from the authors' code as it computes: the spatial relevance reads a (B, C, H, W) map with
``view(B, H*W, C)`` (a reinterpretation of memory, not channels moved last); GELU is the tanh
approximation; up-sampled maps are reflect-padded to their skip's size.

Parameters: 464,521, the ones the authors' forward pass uses; the SSPFusion paper's Table 5
gives 623,989, the count of the authors' model object, which also registers layers it never calls
(:func:`registered_but_unused`).
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F
from torch import nn

from fusion.methods.learned import min_max

CHANNELS = 32


def gelu() -> nn.Module:
    return nn.GELU(approximate="tanh")


def edge_weights(ir: torch.Tensor, vi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each source's share of the two 3x3-max-pooled gradient magnitudes, mapped to [-1, 1]
    (images in [-1, 1])."""

    def edges(x: torch.Tensor) -> torch.Tensor:
        gradient = kornia.filters.spatial_gradient((x + 1) / 2, mode="diff")
        return F.max_pool2d(gradient.pow(2).sum(2).sqrt(), 3, 1, 1)

    e_ir, e_vi = edges(ir), edges(vi)
    total = e_ir + e_vi + 1e-5
    return (e_ir / total - 0.5) * 2, (e_vi / total - 0.5) * 2


class SpatialAttention(nn.Module):
    def __init__(self, channels: int):
        """Enhanced spatial attention (ESA): a strided, max-pooled 1/4-width branch gates x."""
        super().__init__()
        f = channels // 4
        self.reduce = nn.Conv2d(channels, f, 1)
        self.skip = nn.Conv2d(f, f, 1)
        self.stride = nn.Conv2d(f, f, 3, stride=2)
        self.pooled = nn.Conv2d(f, f, 3, padding=1)
        self.conv_a = nn.Conv2d(f, f, 3, padding=1)
        self.conv_b = nn.Conv2d(f, f, 3, padding=1)
        self.expand = nn.Conv2d(f, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        c = F.max_pool2d(self.stride(reduced), kernel_size=7, stride=3)
        c = self.conv_b(torch.relu(self.conv_a(torch.relu(self.pooled(c)))))
        c = F.interpolate(c, x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.expand(c + self.skip(reduced)))


class DistillationBlock(nn.Module):
    def __init__(self, channels: int):
        """RFDB: three (1x1 distilled, 3x3 residual) steps, a 3x3 step, 1x1 merge, ESA."""
        super().__init__()
        half = channels // 2
        self.distil = nn.ModuleList(nn.Conv2d(channels, half, 1) for _ in range(3))
        self.refine = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(3))
        self.last = nn.Conv2d(channels, half, 3, padding=1)
        self.merge = nn.Conv2d(4 * half, channels, 1)
        self.attention = SpatialAttention(channels)
        self.act = gelu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distilled = []
        for distil, refine in zip(self.distil, self.refine, strict=True):
            distilled.append(self.act(distil(x)))
            x = self.act(refine(x) + x)
        distilled.append(self.act(self.last(x)))
        return self.attention(self.merge(torch.cat(distilled, 1)))


class CrossModalTransformer(nn.Module):
    def __init__(self, channels: int):
        """Re-weights the query features by their irrelevance to the key, along channels and
        along positions, and merges the two."""
        super().__init__()
        self.channel_key = nn.Conv2d(channels, 1, 1)
        self.channel_query = nn.Conv2d(channels, channels, 1)
        self.spatial_key = nn.Conv2d(channels, channels, 1)
        self.spatial_query = nn.Conv2d(channels, channels, 1)
        self.merge = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = query.shape
        q = self.channel_query(query).view(batch, channels, height * width)
        k = self.channel_key(key).view(batch, 1, height * width).transpose(1, 2)
        by_channel = (1 - torch.sigmoid(torch.bmm(q, k))).unsqueeze(2) * query
        q = self.spatial_query(query).view(batch, height * width, channels)  # the authors' view
        k = self.spatial_key(key).view(batch, height * width, channels).mean(dim=1).unsqueeze(2)
        irrelevance = 1 - torch.sigmoid(torch.bmm(q, k))
        by_position = irrelevance.transpose(1, 2).view(batch, 1, height, width) * query
        return self.merge(torch.cat([by_channel, by_position], 1))


class CrossModalStage(nn.Module):
    def __init__(self, channels: int):
        """Gates from the sum of both sources, then one transformer per source."""
        super().__init__()
        self.gate_vi = nn.Conv2d(channels, channels, 3, padding=1)
        self.gate_ir = nn.Conv2d(channels, channels, 3, padding=1)
        self.transformer_vi = CrossModalTransformer(channels)
        self.transformer_ir = CrossModalTransformer(channels)

    def forward(self, vi: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        both = vi + ir
        g_vi, g_ir = torch.sigmoid(self.gate_vi(both)), torch.sigmoid(self.gate_ir(both))
        g_vi = g_vi / (g_vi + g_ir)
        g_ir = g_ir / (g_ir + g_vi)  # with the normalised g_vi, in the authors' order
        return self.transformer_vi(vi, ir * g_ir), self.transformer_ir(ir, vi * g_vi)


class Reconstruction(nn.Module):
    def __init__(self, channels: int, expansion: int = 4):
        """The fused image (tanh) from the two sources' stage outputs."""
        super().__init__()
        wide = channels * expansion
        self.layers = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 1),
            nn.Conv2d(channels, wide, 3, padding=1, groups=channels),
            gelu(),
            nn.Conv2d(wide, wide, 3, padding=1, groups=channels),
            gelu(),
            nn.Conv2d(wide, channels, 1, groups=channels),
            nn.Conv2d(channels, 1, 1),
            nn.Tanh(),
        )

    def forward(self, vi: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([vi, ir], 1))


class Upsample(nn.Module):
    def __init__(self, channels: int):
        """Transposed 4x4 convolution (x2), GELU, reflect-padded to the skip's size."""
        super().__init__()
        self.up = nn.Sequential(nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1), gelu())

    def forward(self, skip: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="reflect")


class SourceEncoder(nn.Module):
    def __init__(self, channels: int):
        """Three scales of one source (with its edge weight): features after each RFDB."""
        super().__init__()
        self.stem = nn.Conv2d(2, channels, 3, padding=1)
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, stride=2, padding=1), gelu()) for _ in range(2)
        )
        self.project = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(3))
        self.blocks = nn.ModuleList(DistillationBlock(channels) for _ in range(3))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = [self.stem(x)]
        for down in self.down:
            levels.append(down(levels[-1]))
        return [
            block(project(f)) for block, project, f in zip(self.blocks, self.project, levels, strict=True)
        ]


class CMTFusion(nn.Module):
    def __init__(self, channels: int = CHANNELS):
        """Two source encoders, three cross-modal stages with their up-sampling and merging,
        three reconstruction heads."""
        super().__init__()
        self.encode_ir = SourceEncoder(channels)
        self.encode_vi = SourceEncoder(channels)
        self.stages = nn.ModuleList(CrossModalStage(channels) for _ in range(3))  # fine to coarse
        self.up_vi = nn.ModuleList(Upsample(channels) for _ in range(2))  # into scales 1/2 and 1
        self.up_ir = nn.ModuleList(Upsample(channels) for _ in range(2))
        self.merge_vi = nn.ModuleList(nn.Conv2d(2 * channels, channels, 1) for _ in range(2))
        self.merge_ir = nn.ModuleList(nn.Conv2d(2 * channels, channels, 1) for _ in range(2))
        self.heads = nn.ModuleList(Reconstruction(channels) for _ in range(3))  # fine to coarse

    @classmethod
    def from_config(cls, config) -> CMTFusion:
        return cls(config.channels)

    def forward(self, vi: torch.Tensor, ir: torch.Tensor) -> list[torch.Tensor]:
        """Fused images at scales 1, 1/2, 1/4 from (B, 1, H, W) sources in [-1, 1]."""
        edge_ir, edge_vi = edge_weights(ir, vi)
        f_ir = self.encode_ir(torch.cat([ir, edge_ir], 1))
        f_vi = self.encode_vi(torch.cat([vi, edge_vi], 1))
        x_vi, x_ir = self.stages[2](f_vi[2], f_ir[2])
        outputs = [self.heads[2](x_vi, x_ir)]
        for level in (1, 0):
            x_vi = self.merge_vi[level](torch.cat([f_vi[level], self.up_vi[level](f_vi[level], x_vi)], 1))
            x_ir = self.merge_ir[level](torch.cat([f_ir[level], self.up_ir[level](f_ir[level], x_ir)], 1))
            x_vi, x_ir = self.stages[level](x_vi, x_ir)
            outputs.append(self.heads[level](x_vi, x_ir))
        return outputs[::-1]

    smallest = 64  # the coarsest scale's attention max-pools 7x7 after a stride-2 convolution

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        """Fused luminance in [0, 1] from luminance in [0, 1]: the full-size output, min-max
        rescaled per image as the authors' test code saves it (torchvision's ``normalize=True``,
        which divides by max(range, 1e-5)).

        DECISION (ours): an image under 64 px on a side, which the network cannot take, is
        replicate-padded to 64 and the output cropped back."""
        height, width = ir.shape[-2:]
        pad = (0, max(0, self.smallest - width), 0, max(0, self.smallest - height))
        ir, vi = F.pad(ir, pad, mode="replicate"), F.pad(vi, pad, mode="replicate")
        return min_max(self(vi * 2 - 1, ir * 2 - 1)[0][..., :height, :width], floor=1e-5)


def registered_but_unused(channels: int = CHANNELS) -> int:
    """Parameters of the layers the authors' model registers and never calls: four 1x1 merges
    and four up-samplers beside the ones used, three stem convolutions (2 -> c twice, 1 -> c), a
    1x1 output convolution, a Fourier unit (two 3x3 2c -> 2c without bias, a 1x1 4c -> 2c, two
    PReLUs), and in each reconstruction head four BatchNorms and a 1x1 2c -> 1. With the used
    464,521: Table 5's 623,989."""
    c = channels
    fourier = [nn.Conv2d(2 * c, 2 * c, 3, bias=False), nn.Conv2d(2 * c, 2 * c, 3, bias=False)]
    fourier += [nn.Conv2d(4 * c, 2 * c, 1), nn.PReLU(), nn.PReLU()]
    unused = [
        *(nn.Conv2d(2 * c, c, 1) for _ in range(4)),
        *(nn.ConvTranspose2d(c, c, 4) for _ in range(4)),
        nn.Conv2d(2, c, 3),
        nn.Conv2d(2, c, 3),
        nn.Conv2d(1, c, 3),
        nn.Conv2d(c, 1, 1),
        *fourier,
    ]
    for _ in range(3):
        unused += [nn.BatchNorm2d(4 * c), nn.BatchNorm2d(4 * c), nn.BatchNorm2d(c), nn.BatchNorm2d(1)]
        unused.append(nn.Conv2d(2 * c, 1, 1))
    return sum(p.numel() for module in unused for p in module.parameters())
