"""ITFuse (Tang, He and Liu, "ITFuse: an interactive transformer for infrared and visible image
fusion", Pattern Recognition 2024), as the authors' code computes it.

All maps have 16 channels at the image's size. Three levels, each with:

* a residual branch per source: r = f + conv(conv(f)), f = conv(x) (level 1: a 1 -> 16 unit on
  the source; levels 2-3: the shared 16 -> 16 unit on the previous level's attention output);
* a shared value path from both sources: c = conv(g(x)) (level 1: a 2 -> 16 unit on [I, V];
  levels 2-3: the shared unit on the previous value), v = c + CA(CA(c)), CA the coordinate
  attention (Hou et al. 2021; one module for every use);
* interactive attention (a contextual-transformer layer, Li et al. 2022; one module for every
  use): each source's output k' + w (W_v v), k' = conv(k), w = embed(q + k'), its query q the
  source's own residual branch and its key k the other source's;

then an "equal" attention merges the two level-3 outputs (w (W_v v), key and query both
embedded), coordinate attention again, three per-token transformer blocks (below), the shared
unit and a 1x1 convolution 16 -> 1 with a sigmoid.

A unit is replicate padding, a 3x3 convolution, BatchNorm and ReLU; the 16 -> 16 unit is *one*
module the whole network reuses, 16 times in one forward pass, as in the authors' code.

The transformer blocks are the authors' Swin blocks with ``window_size=1``: a window holds one
token, so its softmax is 1 and attention returns the token's value projection (the query, key
and relative-position bias take part but change nothing, as there). Their ``x.view(B, H, W, C)``
of a (B, C, H, W) map reinterprets memory rather than moving channels last, so a "token" is 16
consecutive pixels of one row of one channel; that is kept, as it is what their network learns.

DECISION (normalisation, ours): every BatchNorm normalises by the statistics of the image being
fused, as in training, where the authors' test script fuses in eval mode with the running
statistics. Their 16 -> 16 unit, coordinate attention and interactive attention are each one
module used many times a pass, so each BatchNorm keeps one set of running statistics for uses
whose statistics differ, and none of them fits: at CPU training lengths that flattened the fused
images. On MFNet's 19 val pairs (among its fusion training pairs; configs/mfnet-cpu.yaml) the
fused SD was 15.8 and SF 3.8 with the running statistics, 26.7 and 7.1 with each image's (the
sources' SD: 20 infrared, 44 visible); running statistics re-estimated over the training crops
gave 18.6 and 4.1. An image's fused result depends on that image alone, as before. The state
dict is the authors' (running statistics included), so their released weights still load.

Parameters: 18,359, the ones the authors' forward pass uses. The SSPFusion paper's Table 5 gives
82,487, the count of the authors' model object, which also registers layers it never calls
(64,128 parameters: :func:`registered_but_unused`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHANNELS = 16


class ImageStatsNorm(nn.BatchNorm2d):
    """BatchNorm that normalises by the statistics of the maps at hand in eval mode too (its
    running statistics are kept, and unused): see the module docstring's DECISION."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class ConvUnit(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        """Replicate padding, 3x3 convolution, BatchNorm, ReLU."""
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3)
        self.norm = ImageStatsNorm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(F.pad(x, (1, 1, 1, 1), mode="replicate"))))


class HardSwish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3) / 6


class CoordinateAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 4):
        """Pool along each axis, a shared 1x1 bottleneck, one sigmoid gate per axis."""
        super().__init__()
        middle = channels // reduction
        self.squeeze = nn.Sequential(nn.Conv2d(channels, middle, 1), ImageStatsNorm(middle), HardSwish())
        self.gate_h = nn.Conv2d(middle, channels, 1)
        self.gate_w = nn.Conv2d(middle, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pooled = torch.cat([x.mean(dim=3, keepdim=True), x.mean(dim=2, keepdim=True).transpose(2, 3)], dim=2)
        along_h, along_w = torch.split(self.squeeze(pooled), [height, width], dim=2)
        return x * torch.sigmoid(self.gate_w(along_w.transpose(2, 3))) * torch.sigmoid(self.gate_h(along_h))


class ContextualAttention(nn.Module):
    def __init__(self, channels: int, equal: bool = False):
        """The authors' CotLayer (``equal`` False: w (W_v v) + conv(k)) or EqualAtt (``equal``:
        the query embedded like the key, no key residual)."""
        super().__init__()
        self.equal = equal
        self.key = ConvUnit(channels, channels)
        self.embed = nn.Sequential(
            nn.Conv2d(channels, channels // 8, 1, bias=False),
            ImageStatsNorm(channels // 8),
            nn.ReLU(),
            nn.Conv2d(channels // 8, 1, 1),
            ImageStatsNorm(1),
        )
        self.value = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), ImageStatsNorm(channels))

    def forward(self, v: torch.Tensor, k: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        k = self.key(k)
        if self.equal:
            q = self.key(q)
        weighted = self.embed(q + k) * self.value(v)
        return weighted if self.equal else weighted + k


class TokenBlock(nn.Module):
    def __init__(self, dim: int, heads: int = 8, mlp_ratio: float = 4.0):
        """A Swin block whose window is one token: x + proj(attention(LN(x))), then x + MLP(LN(x))."""
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.position_bias = nn.Parameter(torch.zeros(1, heads))  # (2 x 1 - 1)² offsets
        nn.init.trunc_normal_(self.position_bias, std=0.02)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def attention(self, tokens: torch.Tensor) -> torch.Tensor:
        """Attention within one-token windows: (..., dim) -> (..., dim)."""
        q, k, v = self.qkv(tokens).unflatten(-1, (3, self.heads, -1)).unbind(-3)
        scores = (q * k).sum(-1, keepdim=True) * q.shape[-1] ** -0.5 + self.position_bias[0, :, None]
        return self.proj((torch.softmax(scores, dim=-1) * v).flatten(-2))  # softmax over one key: 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.reshape(batch, height, width, channels)  # the authors' view, not a permute
        tokens = tokens + self.attention(self.norm1(tokens))
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.reshape(batch, channels, height, width)


class ITFuse(nn.Module):
    def __init__(self, channels: int = CHANNELS, blocks: int = 3, heads: int = 8):
        """The shared units and attention modules, the token blocks and the output layer."""
        super().__init__()
        self.source_unit = ConvUnit(1, channels)  # each source's first layer (shared)
        self.pair_unit = ConvUnit(2, channels)  # the value path's first layer
        self.unit = ConvUnit(channels, channels)  # every other 3x3 layer
        self.coordinate = CoordinateAttention(channels)
        self.interact = ContextualAttention(channels)
        self.merge = ContextualAttention(channels, equal=True)
        self.blocks = nn.Sequential(*(TokenBlock(channels, heads) for _ in range(blocks)))
        self.out = nn.Conv2d(channels, 1, 1)

    @classmethod
    def from_config(cls, config) -> ITFuse:
        return cls(config.channels, config.blocks, config.heads)

    def residual(self, x: torch.Tensor, first: nn.Module) -> torch.Tensor:
        f = first(x)
        return f + self.unit(self.unit(f))

    def value(self, x: torch.Tensor, first: nn.Module) -> torch.Tensor:
        c = self.unit(first(x))
        return c + self.coordinate(self.coordinate(c))

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        """The fused luminance in [0, 1] from (B, 1, H, W) luminance in [0, 1]."""
        r_ir, r_vi = self.residual(ir, self.source_unit), self.residual(vi, self.source_unit)
        v = self.value(torch.cat([ir, vi], 1), self.pair_unit)
        a_ir, a_vi = self.interact(v, r_vi, r_ir), self.interact(v, r_ir, r_vi)
        for _ in range(2):
            r_ir, r_vi = self.residual(a_ir, self.unit), self.residual(a_vi, self.unit)
            v = self.value(v, self.unit)
            a_ir, a_vi = self.interact(v, r_vi, r_ir), self.interact(v, r_ir, r_vi)
        merged = self.merge(v, a_ir, a_vi)
        merged = merged + self.coordinate(self.coordinate(merged))
        return torch.sigmoid(self.out(self.unit(self.blocks(merged))))

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        """Fused luminance in [0, 1] of any size."""
        return self(ir, vi)


def registered_but_unused(channels: int = CHANNELS) -> int:
    """Parameters of the layers the authors' model registers and never calls: 3x3 units 1 -> 32,
    32 -> 32, 16 -> 32, 2 -> 32 and 64 -> 64, a LayerNorm(32) and an MLP 32 -> 128 -> 32, the
    (96-wide) patch-embedding LayerNorm, and in both attention layers a BatchNorm and a split-
    attention head (16 -> 32 -> 32). With the used 18,359: Table 5's 82,487."""
    wide = 2 * channels
    unused = [
        *(ConvUnit(c_in, wide) for c_in in (1, wide, channels, 2)),
        ConvUnit(4 * channels, 4 * channels),
        nn.LayerNorm(wide),
        nn.Sequential(nn.Linear(wide, 4 * wide), nn.Linear(4 * wide, wide)),
        nn.LayerNorm(96),
    ]
    for _ in range(2):
        attention_channels = max(channels * 2 // 4, 32)
        unused += [
            nn.BatchNorm2d(channels),
            nn.Conv2d(channels, attention_channels, 1),
            nn.BatchNorm2d(attention_channels),
            nn.Conv2d(attention_channels, 2 * channels, 1),
        ]
    return sum(p.numel() for module in unused for p in module.parameters())
