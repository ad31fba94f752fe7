"""SSPFusion (paper section 3): structural feature extractor (SFE, eqs. 1-4) + structure-preserving
fusion (SPF, eqs. 5-8) + a U-shaped decoder with skip connections ("Fusion Details").

Read top to bottom: the parameter-free helpers of the equations, the building blocks, then the
model. The paper publishes no code, so every choice it leaves open is decided here and marked
``DECISION`` next to the code, with the equation it belongs to. Summary of the data flow for one
pair of luminance images (B, 1, H, W) in [0, 1], N = len(channels) levels:

    ir_y ──SFE_ir──> F^k_ir (k = 1..N) ──head──> S^k_ir          (eq. 1, predicted structure)
    vi_y ──SFE_vi──> F^k_vi (k = 1..N) ──head──> S^k_vi          (SFE_vi = SFE_ir when shared)
    S^{k,gt} = [ |Sobel F^k| - GAP(|Sobel F^k|) <= 0 ]              (eq. 2, target, detached)
    M^k = J_p(S^k_ir, S^k_vi) = M^k_ir + M^k_vi                     (eqs. 5-6)
    Ŝ^k_ir, Ŝ^k_vi = enhancement of F^k with S^k and M^k            (eqs. 7-8)
    G^k = fuse_k([Ŝ^k_ir, Ŝ^k_vi])                                  (fused features, also the skips)
    fused = clamp(Decoder(G^1..G^N))                                 (U-shaped decoder)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import kornia
import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------------------------
# Parameter-free helpers of the equations (usable on their own, e.g. in tests).
# ----------------------------------------------------------------------------------------------


def sobel_gradient(x: torch.Tensor) -> torch.Tensor:
    """The paper's ∇ (eqs. 2, 5, 14): per-channel |Sobel_x| + |Sobel_y| of (B, C, H, W).

    DECISION: one operator for every ∇ of the paper: the SeAFusion convention (unnormalised 3x3
    Sobel, L1 of the two directions, as in SeAFusion's gradient loss). It is computed by kornia,
    which pads by replicating the border (SeAFusion pads with zeros; the two differ only on the
    1-pixel border, and replicate padding does not invent edges at the image / feature border).
    """
    grad = kornia.filters.spatial_gradient(x, mode="sobel", normalized=False)  # (B, C, 2, H, W)
    return grad.abs().sum(dim=2)


STRUCTURE_TARGETS = ("gradient", "features")


def structure_target(features: torch.Tensor, reading: str = "gradient") -> torch.Tensor:
    """S^{k,gt} of eq. 2 from features F_k (B, C, H, W) -> float {0, 1} map of the same shape.

    S^{k,gt}_{i,j} = 1 where ∇F_k^{i,j} - A ... <= 0, else 0, with ∇ = :func:`sobel_gradient` and
    A = global average pooling over the i-th map (per sample and channel). Eq. 2 prints
    "∇F - A F", which has two readings (``reading``):

    - ``"features"`` (literal): the threshold is the GAP of the features themselves. A channel with
      a negative mean then has an all-zero target and one with a large mean an all-one target (36-
      45 % of the channels at initialisation on a real MSRS pair), and the extractor, trained on
      targets computed from its own features, can make its targets trivial by shifting its
      features (measured: the constant-target fraction climbs during phase 1, see ``
      constant_target_fraction``).
    - ``"gradient"``: the threshold is the GAP of the gradient map, i.e. "a pixel is structure
      where its gradient exceeds the channel's average gradient". Invariant to a shift and a
      scale of the features, so the targets cannot be made trivial that way, and every channel
      with any variation has both classes.

    DECISION: ``"gradient"`` by default (configs/schema.py ``fusion.structure_target``): with the
    literal reading the feature drift it rewards blew the phase-1 features up on real MSRS (see
    docs/sspfusion.md). One map per feature channel (so S^k has C_k channels, which is what
    makes eqs. 7-8 elementwise products with F^k well defined); the polarity is the paper's: 1
    where the gradient is *at most* the threshold (1 = flat, 0 = structure); the polarity does not
    change M^k (J_p(a, b) = J_p(1 - a, 1 - b)). The map is a hard threshold, so it carries no
    gradient: it is always returned detached (a target), and it is computed in float32 outside
    any autocast, so a bf16 run thresholds the same maps as a float32 one.
    """
    if reading not in STRUCTURE_TARGETS:
        raise ValueError(f"structure target reading must be one of {STRUCTURE_TARGETS}, got {reading!r}")
    with torch.autocast(features.device.type, enabled=False):  # thresholds of float32 maps
        features = features.detach().float()
        gradient = sobel_gradient(features)
        average = (gradient if reading == "gradient" else features).mean(dim=(2, 3), keepdim=True)
        return (gradient - average <= 0).float()


def constant_target_fraction(targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """Fraction of the (sample, channel) maps of S^{k,gt} (all levels) that are constant (all 0
    or all 1): such a map carries no structure, and the literal reading of eq. 2 makes many."""
    constant = [(t.amax(dim=(2, 3)) == t.amin(dim=(2, 3))).flatten() for t in targets]
    return torch.cat(constant).float().mean()


def unique_structure(s_a: torch.Tensor, s_b: torch.Tensor) -> torch.Tensor:
    """J_p of eq. 5 / M^k of eq. 6: (1 - a) b + (1 - b) a.

    Eq. 5 prints J_p(∇S_ir, ∇S_vi), with the gradient operator applied to the structure maps.
    DECISION: the gradient is dropped here: S^k is already a structure map (1 = flat, 0 = edge, eq.
    2), and the gradient of a binary edge map marks the *borders* of the edge regions, not the edges,
    so J_p on it would mark the wrong pixels as unique structure.

    For binary maps this is their XOR (1 where exactly one of them is 1); for soft maps in [0, 1]
    (the sigmoid outputs of the structure heads) it is the differentiable relaxation.
    """
    return (1 - s_a) * s_b + (1 - s_b) * s_a


def split_unique_structure(s_ir: torch.Tensor, s_vi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M^k_ir, M^k_vi) of eqs. 7-8: the two summands of J_p(S^k_ir, S^k_vi) (eq. 6).

    DECISION: the paper does not say how M^k splits into M^k_ir and M^k_vi. We take the two
    summands of eq. 5, so M^k = M^k_ir + M^k_vi. With the polarity of eq. 2 (1 = flat, 0 =
    structure), the structure unique to the infrared image is "edge in ir, flat in vi":
    M^k_ir = (1 - S^k_ir) S^k_vi, and M^k_vi = (1 - S^k_vi) S^k_ir.
    """
    return (1 - s_ir) * s_vi, (1 - s_vi) * s_ir


def dice_distance(pred: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Dist of eq. 4 (Deng et al., 2018) shifted to be a distance: 0 for identical maps.

    Eq. 4 is (Σ p² + Σ g²) / (2 Σ p g), the reciprocal of the Dice coefficient, whose minimum is 1
    (reached when P = G). DECISION: we subtract that constant 1 (same gradients as eq. 4) so that a
    perfect prediction scores 0, and add ``smooth`` to numerator and denominator so that two empty
    maps score 0 instead of 0/0. DECISION: "the map" of eq. 4 is all the channels of S^k of one
    sample together (sums over C, H, W), the result is the mean over the batch. Per-channel sums
    would make the reciprocal explode on every channel whose target happens to be empty (a feature
    channel with a negative mean has S^{k,gt} = 0 everywhere): measured at initialisation, L_str
    was ~3000 per-channel against ~1 per-map.
    """
    dims = tuple(range(1, pred.dim()))
    numerator = (pred * pred).sum(dims) + (target * target).sum(dims) + smooth
    denominator = 2 * (pred * target).sum(dims) + smooth
    return (numerator / denominator - 1).mean()


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (Table 5 reports 12,021.649 K for SSPFusion); the frozen copy of the
    SFE that ``frozen_targets`` keeps is not counted (it is never trained)."""
    frozen = getattr(model, "target_sfe", None)
    copied = sum(p.numel() for p in frozen.parameters()) if frozen is not None else 0
    return sum(p.numel() for p in model.parameters()) - copied


# ----------------------------------------------------------------------------------------------
# Building blocks.
# ----------------------------------------------------------------------------------------------


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with 'same' zero padding (stride 2 halves the size)."""
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)


class ChannelAttention(nn.Module):
    """Channel attention of RCAN (Zhang et al., 2018): GAP -> 1x1 C->C/r -> ReLU -> 1x1 -> sigmoid,
    rescaling each channel of the input."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.body = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.body(x)


class RCAB(nn.Module):
    """Residual channel attention block (Zhang et al., 2018, paper Fig. 7):
    x + CA(conv3x3(ReLU(conv3x3(x)))), no normalisation layers (RCAN convention)."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(channels, channels),
            nn.ReLU(inplace=True),
            conv3x3(channels, channels),
            ChannelAttention(channels, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class EncoderLevel(nn.Module):
    """One level of the SFE encoder: an entry convolution (stride 2 for levels k > 1, i.e. the
    'down-sampling operator in each layer' of section 3.1) then ``rcab`` RCAB blocks.

    DECISION (Fusion Details): the RCAB blocks sit at the end of every encoder level, so F^k (the
    features of eqs. 1, 2, 7, 8) is the output of the RCABs: the channel attention adjusts the
    structural features before the unique structures enhance them, as the paper describes
    ("RCAB ... adaptive local feature perception. Further, the unique structure enhances these
    local features"). Level 1 keeps the full resolution (U-Net convention: N levels, N - 1
    down-samplings), so F^k has size H / 2^(k-1).
    """

    def __init__(self, c_in: int, c_out: int, rcab: int, reduction: int, downsample: bool):
        super().__init__()
        self.entry = nn.Sequential(
            conv3x3(c_in, c_out, stride=2 if downsample else 1), nn.LeakyReLU(0.2, inplace=True)
        )
        self.blocks = nn.Sequential(*[RCAB(c_out, reduction) for _ in range(rcab)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.entry(x))


class StructuralFeatureExtractor(nn.Module):
    """SFE (eqs. 1-4): an N-level encoder giving F^1..F^N (eq. 1) and one structure head per level
    predicting S^k from F^k.

    DECISION (S^k, Fig. 4): the head of level k is conv3x3(C_k -> C_k) -> ReLU -> conv1x1(C_k ->
    C_k) -> sigmoid. S^k has C_k channels like its target S^{k,gt} (eq. 2 is per feature channel).
    A 1x1 head cannot see the neighbourhood a Sobel operator needs; the 3x3 + ReLU + 1x1 pair can
    express |Sobel| compared with an offset. The heads read F^k directly (no skip connections, as
    the paper says of the SFE), and their gradient flows into the encoder.
    """

    def __init__(self, channels: Sequence[int], rcab: int, reduction: int):
        super().__init__()
        widths = [1, *channels]
        self.levels = nn.ModuleList(
            EncoderLevel(widths[k], widths[k + 1], rcab, reduction, downsample=k > 0)
            for k in range(len(channels))
        )
        self.heads = nn.ModuleList(
            nn.Sequential(conv3x3(c, c), nn.ReLU(inplace=True), nn.Conv2d(c, c, 1), nn.Sigmoid())
            for c in channels
        )

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """image (B, 1, H, W) -> features F^1..F^N."""
        features, x = [], image
        for level in self.levels:
            x = level(x)
            features.append(x)
        return features

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """image (B, 1, H, W) -> (features F^1..F^N, predicted S^1..S^N)."""
        features = self.encode(image)
        return features, [head(f) for head, f in zip(self.heads, features, strict=True)]


def structure_preserving_enhancement(
    f_ir: torch.Tensor, f_vi: torch.Tensor, s_ir: torch.Tensor, s_vi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """SPF of one level (eqs. 6-8) -> (Ŝ^k_ir, Ŝ^k_vi).

    As printed, eq. 7 reads Ŝ_ir = S_ir + (1 - M_ir) F_ir + M_vi F_ir and eq. 8 reads
    Ŝ_vi = S_vi + M_ir F_ir + (1 - M_ir) F_ir; eq. 8 taken literally is S_vi + F_ir (the mask
    cancels and the visible features vanish), so the equations carry typos.
    DECISION: we read them as the symmetric cross-modal injection that eq. 8 gives once its last
    F_ir is read F_vi:
        Ŝ_ir = S_ir + (1 - M_vi) F_ir + M_vi F_vi     (eq. 7)
        Ŝ_vi = S_vi + (1 - M_ir) F_vi + M_ir F_ir     (eq. 8)
    i.e. each branch keeps its own features except where the *other* modality has a structure of
    its own, where it receives that modality's features: both fused branches then carry the
    complementary (unique) structures of both inputs. M_ir, M_vi come from
    :func:`split_unique_structure`.
    """
    m_ir, m_vi = split_unique_structure(s_ir, s_vi)
    enhanced_ir = s_ir + (1 - m_vi) * f_ir + m_vi * f_vi
    enhanced_vi = s_vi + (1 - m_ir) * f_vi + m_ir * f_ir
    return enhanced_ir, enhanced_vi


OUTPUTS = ("clamp", "sigmoid")


def straight_through_clamp(x: torch.Tensor) -> torch.Tensor:
    """x clamped to [0, 1] in the forward pass, identity in the backward pass."""
    return x + (x.clamp(0, 1) - x).detach()


class Decoder(nn.Module):
    """U-shaped decoder: from the deepest fused features G^N up to full resolution, at each level
    k < N: bilinear x2 up-sampling + conv3x3 (C_{k+1} -> C_k), concatenation with the skip G^k,
    conv3x3 (2 C_k -> C_k), then ``rcab`` RCAB blocks; a final conv3x3 (C_1 -> 1) and the output
    squashing ``output``.

    DECISION: bilinear up-sampling + convolution instead of transposed convolutions (no
    checkerboard artefacts); RCAB blocks in the decoder levels too (the paper's Fig. 3 draws the
    same block type on both sides of the U; it also brings the parameter count near Table 5's).

    DECISION (output, the paper does not give it): ``"clamp"`` (default) clamps to [0, 1] in the
    forward pass and lets the gradient through unchanged (straight-through), so the losses always
    see a valid image and the output can never go dead. ``"sigmoid"`` was the first choice and is
    what made SSPFusion collapse to black images on real MSRS: the decoder's logits drifted to
    about -1500 during phase 1, where the sigmoid's gradient is exactly 0 in float32, so no loss
    could bring the output back (docs/sspfusion.md).
    """

    def __init__(self, channels: Sequence[int], rcab: int, reduction: int, output: str = "clamp"):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"decoder output must be one of {OUTPUTS}, got {output!r}")
        n = len(channels)
        self.output = output
        self.up = nn.ModuleList(
            nn.Sequential(conv3x3(channels[k + 1], channels[k]), nn.LeakyReLU(0.2, inplace=True))
            for k in range(n - 1)
        )
        self.merge = nn.ModuleList(
            nn.Sequential(
                conv3x3(2 * channels[k], channels[k]),
                nn.LeakyReLU(0.2, inplace=True),
                *[RCAB(channels[k], reduction) for _ in range(rcab)],
            )
            for k in range(n - 1)
        )
        self.out = conv3x3(channels[0], 1)

    def forward(self, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        """skips G^1..G^N (G^k at size H / 2^(k-1)) -> image (B, 1, H, W) in [0, 1]."""
        x = skips[-1]
        for k in reversed(range(len(skips) - 1)):
            x = F.interpolate(x, size=skips[k].shape[-2:], mode="bilinear", align_corners=False)
            x = self.merge[k](torch.cat([self.up[k](x), skips[k]], dim=1))
        x = self.out(x)
        return torch.sigmoid(x) if self.output == "sigmoid" else straight_through_clamp(x)


# ----------------------------------------------------------------------------------------------
# The model.
# ----------------------------------------------------------------------------------------------


@dataclass
class FusionOutput:
    """What :meth:`SSPFusion.forward` returns. Images are at the input's size; the structure lists
    are per level k = 1..N, S^k of shape (B, C_k, H'/2^(k-1), W'/2^(k-1)) where H', W' is the
    padded size (the reflect-padded border is supervised like the rest: it is image content).

    - fused: the fused luminance (B, 1, H, W) in [0, 1].
    - structure_ir / structure_vi: predicted S^k (sigmoid, in [0, 1]).
    - structure_gt_ir / structure_gt_vi: the targets S^{k,gt} of eq. 2 (detached).
    - unique: M^k = J_p(S^k_ir, S^k_vi) (eq. 6) used by SPF; [] when use_spf is off.
    - reconstruction_ir / reconstruction_vi: each source decoded from its own features only
      (phase 1 auto-encoder term, see losses.total_loss); None unless forward(reconstruct=True).
    """

    fused: torch.Tensor
    structure_ir: list[torch.Tensor] = field(default_factory=list)
    structure_vi: list[torch.Tensor] = field(default_factory=list)
    structure_gt_ir: list[torch.Tensor] = field(default_factory=list)
    structure_gt_vi: list[torch.Tensor] = field(default_factory=list)
    unique: list[torch.Tensor] = field(default_factory=list)
    reconstruction_ir: torch.Tensor | None = None
    reconstruction_vi: torch.Tensor | None = None

    def float(self) -> FusionOutput:
        """The same output in float32 (the losses run in fp32 even when the network ran under
        bf16/fp16 autocast: SSIM, Sobel and L1 of values near 1 lose digits in 16 bits)."""
        cast = lambda t: None if t is None else t.float()  # noqa: E731
        return FusionOutput(
            **{
                name: [cast(t) for t in value] if isinstance(value, list) else cast(value)
                for name, value in vars(self).items()
            }
        )


class SSPFusion(nn.Module):
    """SSPFusion (paper Fig. 3): SFE, SPF at every level, fusion convolutions, decoder.

    Args:
        channels: width C_k of each level (N = len(channels); the paper uses N = 3 and does not give
            widths: DECISION 64, 128, 256, doubling per level, the configs/schema.py default).
        rcab_per_level: RCAB blocks at the end of each encoder level and of each decoder level.
        reduction: channel-attention reduction r of RCAB (RCAN's 16).
        use_spf: the unique-structure enhancement of eqs. 6-8 (off = ablation "w/o P": the fusion
            convolutions get [F^k_ir, F^k_vi] directly). The other ablation, "w/o F" (use_sfe), only
            changes the loss (losses.total_loss): the network is the same.
        shared_encoder: one SFE (encoder and heads) for both modalities instead of one each.
        structure_target: the reading of eq. 2 (:func:`structure_target`).
        output: the decoder's output squashing (:class:`Decoder`).
        frozen_targets: keep a frozen copy of the SFE (``target_sfe``, refreshed by
            :meth:`freeze_targets` when phase 2 starts) and compute S^{k,gt} from its features.

    DECISION (shared_encoder, eq. 1): the paper draws two SFE branches without saying whether they
    share weights. With separate encoders channel i of F_ir and channel i of F_vi are unrelated
    filters, so the per-channel complementarity M^k (eqs. 5-6) and the exchange of eqs. 7-8
    compare unrelated quantities; with one shared encoder (as in RFN-Nest, Li et al. 2021, whose
    two-stage scheme the paper follows) they compare the same filter on both images. The default
    is chosen by experiment (docs/sspfusion.md; configs/paper.yaml).

    Fusion of level k: G^k = LeakyReLU(conv3x3([Ŝ^k_ir, Ŝ^k_vi]))  (2 C_k -> C_k). DECISION: a
    learned 3x3 fusion of the two enhanced branches (the paper says only that the decoder
    reconstructs "from fused features"); G^k is also the skip connection to the decoder.

    Any H, W: the input is reflect-padded (replicate when too small to reflect) on the bottom and
    right to a multiple of 2^(N-1) (the N - 1 down-samplings) and the output is cropped back.
    """

    def __init__(
        self,
        channels: Sequence[int] = (64, 128, 256),
        rcab_per_level: int = 2,
        reduction: int = 16,
        use_spf: bool = True,
        shared_encoder: bool = False,
        structure_target: str = "gradient",
        output: str = "clamp",
        frozen_targets: bool = False,
    ):
        super().__init__()
        if structure_target not in STRUCTURE_TARGETS:
            raise ValueError(f"structure_target must be one of {STRUCTURE_TARGETS}, got {structure_target!r}")
        self.channels = tuple(int(c) for c in channels)
        self.use_spf = use_spf
        self.shared_encoder = shared_encoder
        self.target_reading = structure_target
        self.sfe_ir = StructuralFeatureExtractor(self.channels, rcab_per_level, reduction)
        self.sfe_vi = (
            None if shared_encoder else StructuralFeatureExtractor(self.channels, rcab_per_level, reduction)
        )
        self.target_sfe = None
        if frozen_targets:
            self.target_sfe = nn.ModuleList(copy.deepcopy(sfe) for sfe in self.extractors())
            self.target_sfe.requires_grad_(False)
        self.fuse = nn.ModuleList(
            nn.Sequential(conv3x3(2 * c, c), nn.LeakyReLU(0.2, inplace=True)) for c in self.channels
        )
        self.decoder = Decoder(self.channels, rcab_per_level, reduction, output)

    @classmethod
    def from_config(cls, config) -> SSPFusion:
        """Build from a configs.schema.FusionConfig (or an ExperimentConfig: its .fusion)."""
        config = getattr(config, "fusion", config)
        return cls(
            channels=config.channels,
            rcab_per_level=config.rcab_per_level,
            reduction=config.reduction,
            use_spf=config.use_spf,
            shared_encoder=config.shared_encoder,
            structure_target=config.structure_target,
            output=config.output,
            frozen_targets=config.frozen_targets,
        )

    def extractors(self) -> tuple[StructuralFeatureExtractor, StructuralFeatureExtractor]:
        """(infrared SFE, visible SFE): the same module twice when the encoder is shared."""
        return self.sfe_ir, self.sfe_vi if self.sfe_vi is not None else self.sfe_ir

    @torch.no_grad()
    def freeze_targets(self) -> None:
        """Copy the current SFE weights into the frozen target extractor (phase 2 starts)."""
        if self.target_sfe is None:
            raise ValueError("model built without frozen_targets")
        for frozen, live in zip(self.target_sfe, self.extractors(), strict=True):
            frozen.load_state_dict(live.state_dict())

    @property
    def multiple(self) -> int:
        """Input sizes are padded to a multiple of this (2^(N-1))."""
        return 2 ** (len(self.channels) - 1)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        if pad_h == 0 and pad_w == 0:
            return x
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

    def _targets(self, index: int, image: torch.Tensor, features: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.target_sfe is not None and self.training:
            with torch.no_grad():
                features = self.target_sfe[index].encode(image)
        return [structure_target(f, self.target_reading) for f in features]

    def forward(self, ir_y: torch.Tensor, vi_y: torch.Tensor, reconstruct: bool = False) -> FusionOutput:
        """ir_y, vi_y: (B, 1, H, W) luminance in [0, 1] -> :class:`FusionOutput`.

        ``reconstruct=True`` also decodes each source from its own features (the phase-1 auto-
        encoder path, which shares the decoder; no extra parameters).
        """
        if ir_y.shape != vi_y.shape or ir_y.dim() != 4 or ir_y.shape[1] != 1:
            raise ValueError(
                f"expected two (B, 1, H, W) tensors, got {tuple(ir_y.shape)} and {tuple(vi_y.shape)}"
            )
        h, w = ir_y.shape[-2:]
        sfe_ir, sfe_vi = self.extractors()
        ir_y, vi_y = self._pad(ir_y), self._pad(vi_y)
        f_ir, s_ir = sfe_ir(ir_y)
        f_vi, s_vi = sfe_vi(vi_y)
        gt_ir, gt_vi = self._targets(0, ir_y, f_ir), self._targets(1, vi_y, f_vi)

        fused_levels, unique = [], []
        for k, fuse in enumerate(self.fuse):
            if self.use_spf:
                e_ir, e_vi = structure_preserving_enhancement(f_ir[k], f_vi[k], s_ir[k], s_vi[k])
                unique.append(unique_structure(s_ir[k], s_vi[k]))
            else:
                e_ir, e_vi = f_ir[k], f_vi[k]
            fused_levels.append(fuse(torch.cat([e_ir, e_vi], dim=1)))
        fused = self.decoder(fused_levels)[..., :h, :w]

        recon_ir = recon_vi = None
        if reconstruct:
            recon_ir = self.decoder(f_ir)[..., :h, :w]
            recon_vi = self.decoder(f_vi)[..., :h, :w]
        return FusionOutput(
            fused=fused,
            structure_ir=s_ir,
            structure_vi=s_vi,
            structure_gt_ir=gt_ir,
            structure_gt_vi=gt_vi,
            unique=unique,
            reconstruction_ir=recon_ir,
            reconstruction_vi=recon_vi,
        )
