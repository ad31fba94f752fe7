"""SSPFusion training losses (paper 3.3, eqs. 3, 9-14) and the two training phases (4.1).

    L_total = alpha L_str + beta L_rec + L_fus                       (eq. 9)
    L_str   = Σ_k Dist(S^k, S^{k,gt})                                 (eqs. 3-4, dice distance)
    L_rec   = Σ_k Charbonnier(S^k, S^{k,gt})                          (eq. 10)
    L_fus   = L_ssim + L_smooth + L_grad                              (eqs. 11-14)

Every L1 "norm" and the Charbonnier penalty are means over pixels (not sums), so the terms have
comparable scales whatever the crop size; the paper's weights (alpha = beta = 1, L_fus terms 1 : 1
: 1) are applied to these means.
"""

from __future__ import annotations

import kornia
import torch

from fusion.sspfusion.model import (
    FusionOutput,
    constant_target_fraction,
    dice_distance,
    sobel_gradient,
)

PHASES = ("structure", "fusion")


def structure_loss(predicted: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """L_str of eq. 3: the sum over levels k of the dice distance (eq. 4, see
    :func:`fusion.sspfusion.model.dice_distance`) between S^k and S^{k,gt}."""
    if len(predicted) != len(targets) or not predicted:
        raise ValueError(
            f"need as many (non-zero) predicted maps as targets: {len(predicted)} vs {len(targets)}"
        )
    return sum(dice_distance(s, g) for s, g in zip(predicted, targets, strict=True))


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier penalty (Lai et al., 2019; eq. 10): mean over elements of sqrt((x - y)² + eps²).

    DECISION: eq. 10 prints sqrt(||S - S^gt||² + eps²) with a norm over the whole map; we use
    Lai et al.'s per-pixel form (the paper cites it as "the Charbonnier loss"), averaged, so equal
    tensors give exactly eps and the loss does not scale with the image size.
    """
    return torch.sqrt((x - y) ** 2 + eps * eps).mean()


def reconstruction_loss(
    predicted: list[torch.Tensor], targets: list[torch.Tensor], eps: float = 1e-3
) -> torch.Tensor:
    """L_rec of eq. 10: the sum over levels k of Charbonnier(S^k, S^{k,gt}).

    DECISION: the paper's text defines L_rec between the predicted structure map S and S^gt (not
    between an image and its reconstruction), so it supervises the same heads as L_str: the dice
    term cares about the overlap of the maps, the Charbonnier term about every pixel's value.
    """
    return sum(charbonnier(s, g, eps) for s, g in zip(predicted, targets, strict=True))


def ssim_loss(fused: torch.Tensor, ir_y: torch.Tensor, vi_y: torch.Tensor) -> torch.Tensor:
    """L_ssim of eq. 12: 1 - (SSIM(F, ir) + SSIM(F, vi)) / 2, SSIM of Wang et al. (2004) with an
    11x11 Gaussian window (sigma 1.5) on [0, 1] images (kornia.metrics.ssim, mean of the map)."""
    ssim_ir = kornia.metrics.ssim(fused, ir_y, window_size=11, max_val=1.0).mean()
    ssim_vi = kornia.metrics.ssim(fused, vi_y, window_size=11, max_val=1.0).mean()
    return 1 - (ssim_ir + ssim_vi) / 2


def smooth_loss(fused: torch.Tensor, ir_y: torch.Tensor, vi_y: torch.Tensor) -> torch.Tensor:
    """L_smooth of eq. 13: mean |F - max(I_ir, I_vi)| (SeAFusion's intensity loss)."""
    return (fused - torch.maximum(ir_y, vi_y)).abs().mean()


def gradient_loss(fused: torch.Tensor, ir_y: torch.Tensor, vi_y: torch.Tensor) -> torch.Tensor:
    """L_grad of eq. 14: mean |∇F - max(∇I_ir, ∇I_vi)|, ∇ = |Sobel_x| + |Sobel_y| (SeAFusion)."""
    target = torch.maximum(sobel_gradient(ir_y), sobel_gradient(vi_y))
    return (sobel_gradient(fused) - target).abs().mean()


def fusion_loss(fused: torch.Tensor, ir_y: torch.Tensor, vi_y: torch.Tensor) -> dict[str, torch.Tensor]:
    """L_fus of eq. 11 and its three terms (weights 1 : 1 : 1, section 4.4): keys ssim, smooth,
    grad, fus."""
    terms = {
        "ssim": ssim_loss(fused, ir_y, vi_y),
        "smooth": smooth_loss(fused, ir_y, vi_y),
        "grad": gradient_loss(fused, ir_y, vi_y),
    }
    terms["fus"] = terms["ssim"] + terms["smooth"] + terms["grad"]
    return terms


def total_loss(
    output: FusionOutput, ir_y: torch.Tensor, vi_y: torch.Tensor, config, phase: str = "fusion"
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of one training phase -> (loss, {term name: detached scalar tensor}).

    ``config`` is a configs.schema.FusionConfig (or an ExperimentConfig: its .fusion is used):
    alpha, beta, charbonnier_eps, use_sfe are read.

    DECISION (phases, paper 4.1: "a two-stage training scheme inspired by (Li et al., 2021)"; the
    first phase "obtains the ground-truth structure", the second "generates the fused image"):

    - phase "structure": alpha L_str + beta L_rec + L_ae, where L_ae = Charbonnier(reconstruction,
      source) summed over the two sources is the auto-encoder term of Li et al.'s (RFN-Nest) first
      phase: each source decoded from its own features (needs ``model(ir, vi, reconstruct=True)``).
      It is not in eq. 9; it keeps the features informative, since the structure terms alone can
      be minimised by collapsing the features (a flat feature map has a trivial S^{k,gt}).
    - phase "fusion": the full eq. 9, alpha L_str + beta L_rec + L_fus; reconstructions, if
      present, are ignored.

    Ablation "w/o F" (use_sfe off) follows the paper's text ("trained solely with L_fus" instead
    of eq. 9): L_str and L_rec are left out of both phases and nothing else changes (same network
    and heads, same two phases; phase 1 is then L_ae alone).

    Terms in the dict: str, rec (when use_sfe), const_gt (fraction of constant target maps, see
    model.constant_target_fraction; logged, not optimised), ae (structure phase), ssim, smooth,
    grad, fus (fusion phase), total.
    """
    config = getattr(config, "fusion", config)
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    terms: dict[str, torch.Tensor] = {}
    loss = ir_y.new_zeros(())
    targets = output.structure_gt_ir + output.structure_gt_vi
    if targets:
        terms["const_gt"] = constant_target_fraction(targets)
    if config.use_sfe:
        predicted = output.structure_ir + output.structure_vi
        if not predicted:
            raise ValueError("config.use_sfe is on but the output holds no structure maps")
        terms["str"] = structure_loss(predicted, targets)
        terms["rec"] = reconstruction_loss(predicted, targets, config.charbonnier_eps)
        loss = loss + config.alpha * terms["str"] + config.beta * terms["rec"]
    if phase == "structure":
        if output.reconstruction_ir is None or output.reconstruction_vi is None:
            raise ValueError(
                'phase "structure" needs the reconstructions: call model(ir_y, vi_y, reconstruct=True)'
            )
        terms["ae"] = charbonnier(output.reconstruction_ir, ir_y, config.charbonnier_eps) + charbonnier(
            output.reconstruction_vi, vi_y, config.charbonnier_eps
        )
        loss = loss + terms["ae"]
    else:
        terms.update(fusion_loss(output.fused, ir_y, vi_y))
        loss = loss + terms["fus"]
    terms["total"] = loss
    return loss, {name: value.detach() for name, value in terms.items()}
