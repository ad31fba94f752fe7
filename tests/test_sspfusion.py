"""SSPFusion: the equations' helpers, the losses, the model's shapes, one training step, ablations,
the paper-size parameter count (fast: tiny widths except for the parameter count)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs.schema import FusionConfig
from fusion.colour import rgb_to_ycbcr, rgb_to_ycbcr_torch, ycbcr_to_rgb, ycbcr_to_rgb_torch
from fusion.sspfusion import (
    SSPFusion,
    charbonnier,
    count_parameters,
    dice_distance,
    fusion_loss,
    split_unique_structure,
    structure_loss,
    structure_target,
    total_loss,
    unique_structure,
)

TINY = (4, 8, 16)
PAPER_PARAMETERS_K = 12021.649  # Table 5


def tiny_config(**overrides) -> FusionConfig:
    return FusionConfig(channels=list(TINY), rcab_per_level=1, reduction=4, **overrides)


def pair(batch: int = 2, height: int = 32, width: int = 40, seed: int = 0):
    """A smooth-ish random (ir, vi) pair in [0, 1] with a bright 'target' in the infrared."""
    g = torch.Generator().manual_seed(seed)
    vi = torch.nn.functional.avg_pool2d(torch.rand(batch, 1, height, width, generator=g), 3, 1, 1)
    ir = 0.3 * torch.rand(batch, 1, height, width, generator=g)
    ir[..., height // 4 : height // 2, width // 4 : width // 2] = 0.9
    return ir, vi


def test_unique_structure_of_binary_maps_is_xor():
    g = torch.Generator().manual_seed(1)
    a = (torch.rand(2, 3, 9, 11, generator=g) > 0.5).float()
    b = (torch.rand(2, 3, 9, 11, generator=g) > 0.5).float()
    expected = torch.logical_xor(a.bool(), b.bool()).float()
    assert torch.equal(unique_structure(a, b), expected)
    m_ir, m_vi = split_unique_structure(a, b)
    assert torch.equal(m_ir + m_vi, expected)
    assert torch.equal(m_ir * m_vi, torch.zeros_like(a))  # disjoint


def test_structure_target_of_constant_features_is_all_ones():
    features = torch.full((2, 5, 12, 16), 0.7)  # gradient 0 <= average 0.7 everywhere (eq. 2)
    target = structure_target(features)
    assert target.shape == features.shape
    assert torch.equal(target, torch.ones_like(features))
    assert not target.requires_grad


def test_structure_target_marks_edges_with_zeros():
    features = torch.zeros(1, 1, 16, 16)
    features[..., :, 8:] = 1.0  # a vertical step: strong gradient at columns 7-8
    target = structure_target(features)
    assert target[0, 0, :, 7:9].eq(0).all() and target[0, 0, :, :6].eq(1).all()


def test_dice_distance_of_a_map_with_itself_is_zero():
    g = torch.Generator().manual_seed(2)
    s = torch.rand(2, 4, 10, 10, generator=g)
    assert dice_distance(s, s).item() == pytest.approx(0.0, abs=1e-6)
    assert dice_distance(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)).item() == 0.0
    assert dice_distance(s, 1 - s).item() > 0.1
    assert structure_loss([s, s], [s, s]).item() == pytest.approx(0.0, abs=1e-6)


def test_charbonnier_of_equal_tensors_is_eps():
    x = torch.rand(2, 1, 8, 8)
    assert charbonnier(x, x, 1e-3).item() == pytest.approx(1e-3, rel=1e-4)
    assert charbonnier(x, x + 0.5, 1e-3).item() == pytest.approx(0.5, rel=1e-4)


def test_fusion_loss_terms():
    ir, vi = pair()
    best = torch.maximum(ir, vi)
    terms = fusion_loss(best, ir, vi)
    assert terms["smooth"].item() == pytest.approx(0.0, abs=1e-7)
    assert 0.0 <= terms["ssim"].item() <= 2.0
    assert terms["fus"].item() == pytest.approx(sum(terms[k].item() for k in ("ssim", "smooth", "grad")))


def test_colour_round_trip_within_one_grey_level():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb))
    assert np.abs(back - rgb / 255.0).max() <= 1 / 255
    tensor = torch.from_numpy(rgb / 255.0).float().permute(2, 0, 1)[None]
    back_t = ycbcr_to_rgb_torch(rgb_to_ycbcr_torch(tensor))
    assert (back_t - tensor).abs().max().item() <= 1 / 255
    ycbcr_t = rgb_to_ycbcr_torch(tensor)[0].permute(1, 2, 0).numpy()
    assert np.abs(ycbcr_t - rgb_to_ycbcr(rgb)).max() < 1e-3


@pytest.mark.parametrize("size", [(37, 53), (32, 40), (5, 3)])
def test_model_keeps_the_input_size(size):
    model = SSPFusion(TINY, rcab_per_level=1, reduction=4)
    ir, vi = pair(2, *size)
    with torch.no_grad():
        out = model(ir, vi, reconstruct=True)
    assert out.fused.shape == ir.shape
    assert out.reconstruction_ir.shape == ir.shape and out.reconstruction_vi.shape == vi.shape
    assert out.fused.min() >= 0 and out.fused.max() <= 1
    assert len(out.structure_ir) == len(out.structure_gt_vi) == len(out.unique) == 3
    for k, (s, gt, c) in enumerate(zip(out.structure_ir, out.structure_gt_ir, TINY, strict=True)):
        assert s.shape == gt.shape and s.shape[:2] == (2, c)
        assert s.shape[-1] == out.structure_ir[0].shape[-1] // 2**k


@pytest.mark.parametrize("phase", ["structure", "fusion"])
def test_adam_steps_lower_the_loss(phase):
    torch.manual_seed(0)
    config = tiny_config()
    model = SSPFusion.from_config(config)
    ir, vi = pair(2, 32, 32)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.9, 0.999))
    losses = []
    for _ in range(6):
        loss, terms = total_loss(model(ir, vi, reconstruct=phase == "structure"), ir, vi, config, phase)
        assert torch.isfinite(loss) and terms["total"].item() == pytest.approx(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("use_sfe,use_spf", [(True, True), (False, True), (True, False), (False, False)])
def test_ablation_switches_build_and_run(use_sfe, use_spf):
    config = tiny_config(use_sfe=use_sfe, use_spf=use_spf)
    model = SSPFusion.from_config(config)
    ir, vi = pair(1, 24, 24)
    out = model(ir, vi, reconstruct=True)
    assert out.fused.shape == ir.shape
    assert bool(out.unique) == use_spf
    assert model.sfe_ir.heads is not None and out.structure_ir  # "w/o F" keeps the network
    for phase in ("structure", "fusion"):
        loss, terms = total_loss(out, ir, vi, config, phase)
        assert ("str" in terms) == use_sfe and ("rec" in terms) == use_sfe
        assert ("fus" in terms) == (phase == "fusion")
    loss.backward()
    with pytest.raises(ValueError):
        total_loss(model(ir, vi), ir, vi, config, "structure")  # no reconstructions


def test_without_sfe_only_the_loss_changes():
    # paper 4.3: "w/o F" is trained without L_str and L_rec; same parameters, same phases
    full, ablated = tiny_config(), tiny_config(use_sfe=False)
    assert count_parameters(SSPFusion.from_config(full)) == count_parameters(SSPFusion.from_config(ablated))
    torch.manual_seed(0)
    model = SSPFusion.from_config(full)
    ir, vi = pair(1, 24, 24)
    out = model(ir, vi, reconstruct=True)
    for phase in ("structure", "fusion"):
        loss_full, terms = total_loss(out, ir, vi, full, phase)
        loss_ablated, _ = total_loss(out, ir, vi, ablated, phase)
        dropped = terms["str"].item() + terms["rec"].item()
        assert loss_ablated.item() == pytest.approx(loss_full.item() - dropped, rel=1e-5)


def test_eq2_readings_and_constant_target_fraction():
    from fusion.sspfusion.model import constant_target_fraction

    g = torch.Generator().manual_seed(3)
    features = torch.rand(2, 4, 16, 16, generator=g) - 2.0  # negative mean, varying gradient
    literal = structure_target(features, "features")
    assert torch.equal(literal, torch.zeros_like(literal))  # |grad| - (negative mean) > 0 everywhere
    assert constant_target_fraction([literal]).item() == 1.0
    gradient = structure_target(features, "gradient")
    assert constant_target_fraction([gradient]).item() == 0.0
    # shift- and scale-invariant: the features cannot make their own targets trivial
    assert torch.equal(structure_target(3 * features + 5, "gradient"), gradient)
    with pytest.raises(ValueError, match="gradient"):
        structure_target(features, "mean")


def test_clamp_output_never_goes_dead_but_sigmoid_does():
    from fusion.sspfusion.model import straight_through_clamp

    logits = torch.full((1, 1, 4, 4), -1500.0, requires_grad=True)  # what phase 1 produced on MSRS
    torch.sigmoid(logits).mean().backward()
    assert logits.grad.abs().max().item() == 0.0
    logits.grad = None
    out = straight_through_clamp(logits)
    assert out.max().item() == 0.0
    out.mean().backward()
    assert logits.grad.abs().min().item() > 0


def test_shared_encoder_and_frozen_targets():
    separate = SSPFusion.from_config(tiny_config())
    shared = SSPFusion.from_config(tiny_config(shared_encoder=True))
    sfe = count_parameters(separate.sfe_ir)
    assert count_parameters(separate) - count_parameters(shared) == sfe
    assert shared.extractors()[0] is shared.extractors()[1]

    model = SSPFusion.from_config(tiny_config(frozen_targets=True))
    assert count_parameters(model) == count_parameters(separate)  # the frozen copy is not trained
    ir, vi = pair(1, 24, 24)
    with torch.no_grad():
        model.sfe_ir.levels[0].entry[0].weight.mul_(-1)  # training moves the live extractor...
    model.train()
    frozen_gt = model(ir, vi).structure_gt_ir
    model.freeze_targets()  # ...the targets follow it only when phase 2 starts
    live_gt = model(ir, vi).structure_gt_ir
    assert not all(torch.equal(a, b) for a, b in zip(frozen_gt, live_gt, strict=True))


def test_losses_run_in_float32():
    out = SSPFusion(TINY, rcab_per_level=1, reduction=4)(*pair(1, 16, 16), reconstruct=True)
    half = type(out)(
        **{
            k: [t.bfloat16() for t in v] if isinstance(v, list) else v.bfloat16()
            for k, v in vars(out).items()
        }
    )
    assert half.float().fused.dtype == torch.float32
    assert all(t.dtype == torch.float32 for t in half.float().structure_ir)


def test_paper_size_parameter_count():
    config = FusionConfig()
    model = SSPFusion.from_config(config)
    n = count_parameters(model)
    print(
        f"SSPFusion {config.channels}, rcab {config.rcab_per_level}, r {config.reduction}: "
        f"{n / 1000:.3f} K parameters (paper Table 5: {PAPER_PARAMETERS_K} K)"
    )
    assert PAPER_PARAMETERS_K * 1000 / 3 < n < PAPER_PARAMETERS_K * 1000 * 3
