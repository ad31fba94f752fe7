"""AUIF (Zhao et al., IEEE TCSVT 2021): fusion by algorithm unrolling. Two optimisation
problems, one for the base (low-frequency) and one for the detail (high-frequency) part of an
image, are solved by a fixed number of gradient steps whose filters are learned; a tiny decoder
turns base + detail back into an image.

One unrolled step (the paper's unrolled iterations, the base and the detail encoder alike):

    X_{k+1} = X_k - eta_k ( sigma(K_k~ * (K_k * X_k)) - theta_k (I - X_k) )

K_k is a bank of ``kernels`` 3x3 filters (1 -> 64 channels), K_k~ the same filters flipped and
transposed (64 -> 1, the adjoint of K_k), sigma = PReLU(BatchNorm(.)) a learned stand-in for the
prior's (sub)gradient, eta_k the step size and theta_k the data-fidelity weight, both learned per
step. The base encoder starts from a box-blurred image (11x11), the detail encoder from its
Laplacian (19x19), each through ``layers`` steps (10). The decoder is one reflection-padded 3x3
convolution (no bias), BatchNorm and a sigmoid on B + D. Every map keeps one channel and the
image size. 2 x 10 x 581 + 11 = 11,631 parameters, as the SSPFusion paper's Table 5.

DECISION (initial values the paper leaves open, taken from the authors' public code): filters
start standard-normal, eta ~ N(0.1, 0.03), theta ~ N(1e-3, 1e-4); the box blur and Laplacian are
kornia's (reflect borders, normalised Laplacian).

DECISION (fusion rule): base maps are summed and detail maps are summed before decoding (the
authors' default; ``fusion_rule`` average or l1_norm are the paper's alternatives).
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F
from torch import nn

from fusion.methods.learned import combine


class UnrolledStep(nn.Module):
    def __init__(self, kernels: int = 64):
        """One gradient step with learned filters, nonlinearity, step size and fidelity weight."""
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(kernels, 1, 3, 3))
        self.sigma = nn.Sequential(nn.BatchNorm2d(1), nn.PReLU())
        self.eta = nn.Parameter(torch.normal(0.1, 0.03, (1,)))
        self.theta = nn.Parameter(torch.normal(1e-3, 1e-4, (1,)))

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        response = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.kernel)
        adjoint = torch.rot90(self.kernel, 2, [-1, -2]).transpose(0, 1)
        back = F.conv2d(F.pad(response, (1, 1, 1, 1), mode="reflect"), adjoint)
        return x - self.eta * (self.sigma(back) - self.theta * (image - x))


class UnrolledEncoder(nn.Module):
    def __init__(
        self, start: str, layers: int = 10, kernels: int = 64, blur_size: int = 11, laplacian_size: int = 19
    ):
        """``layers`` unrolled steps from a box-blurred (``start="base"``) or a Laplacian-filtered
        (``start="detail"``) copy of the image."""
        super().__init__()
        if start not in ("base", "detail"):
            raise ValueError(f"start must be 'base' or 'detail', got {start!r}")
        self.start, self.blur_size, self.laplacian_size = start, blur_size, laplacian_size
        self.steps = nn.ModuleList(UnrolledStep(kernels) for _ in range(layers))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.start == "base":
            x = kornia.filters.box_blur(image, (self.blur_size, self.blur_size))
        else:
            x = kornia.filters.laplacian(image, self.laplacian_size)
        for step in self.steps:
            x = step(x, image)
        return x


class AUIF(nn.Module):
    def __init__(
        self,
        layers: int = 10,
        kernels: int = 64,
        blur_size: int = 11,
        laplacian_size: int = 19,
        fusion_rule: str = "sum",
    ):
        """Base encoder, detail encoder and the one-layer decoder."""
        super().__init__()
        self.base = UnrolledEncoder("base", layers, kernels, blur_size, laplacian_size)
        self.detail = UnrolledEncoder("detail", layers, kernels, blur_size, laplacian_size)
        self.decoder = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(1, 1, 3, bias=False), nn.BatchNorm2d(1), nn.Sigmoid()
        )
        self.fusion_rule = fusion_rule

    @classmethod
    def from_config(cls, config) -> AUIF:
        return cls(config.layers, config.kernels, config.blur_size, config.laplacian_size, config.fusion_rule)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Training pass: the image reconstructed from its own base and detail parts."""
        return self.decoder(self.base(image) + self.detail(image))

    def fuse(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        """Fused luminance in [0, 1] from infrared and visible luminance (B, 1, H, W)."""
        base = combine(self.base(ir), self.base(vi), self.fusion_rule)
        detail = combine(self.detail(ir), self.detail(vi), self.fusion_rule)
        return self.decoder(base + detail)
