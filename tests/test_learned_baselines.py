"""The learned Table 2 baselines: sizes, forward passes, losses,
training, checkpoints and the refusal to fuse before training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs.schema import ConfigError, ExperimentConfig, load_config
from fusion.colour import rgb_to_ycbcr
from fusion.methods import available_methods, build_method, trainable_methods
from fusion.methods.base import LuminanceMethod
from fusion.methods.learned import combine, count_parameters, recipe
from fusion.training import train
from msrs.layout import DataError, list_pairs, read_vi

from .conftest import REPO

LEARNED = [name for name in trainable_methods() if name != "sspfusion"]  # the learned baselines
TINY = load_config(REPO / "configs" / "tiny.yaml", ["runtime.threads=1"])


def smooth_pair(batch: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two structured [0, 1] images (gradients and blobs, not white noise)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    ir = 0.5 + 0.4 * torch.sin(9 * xx) * torch.cos(7 * yy)
    vi = 0.3 + 0.5 * yy * (xx > 0.4)
    return ir.expand(batch, 1, -1, -1).clone(), vi.expand(batch, 1, -1, -1).clone()


def test_every_learned_baseline_is_registered_and_trainable():
    assert set(LEARNED) <= set(available_methods())
    assert set(LEARNED) <= set(trainable_methods())


@pytest.mark.parametrize("name", LEARNED)
def test_paper_size_parameter_count_equals_table_5(name):
    method, section = recipe(name), getattr(ExperimentConfig(), name)
    parameters = method.count_parameters(method.build_model(section)) + method.unused_parameters(section)
    print(f"{method.title}: {parameters:,} parameters (Table 5: {method.paper_parameters:,})")
    assert abs(parameters / method.paper_parameters - 1) <= 0.01
    assert parameters == method.paper_parameters  # exact today; docs/baselines.md explains any change


def test_itfuse_trains_the_18359_parameters_its_authors_forward_pass_uses():
    method, section = recipe("itfuse"), ExperimentConfig().itfuse
    assert count_parameters(method.build_model(section)) == 18_359
    assert method.unused_parameters(section) == 82_487 - 18_359


@pytest.mark.parametrize("name", LEARNED)
@pytest.mark.parametrize("size", [(37, 53), (32, 40), (10, 13)])
def test_fuse_keeps_the_size_and_range(name, size):
    torch.manual_seed(0)
    model = recipe(name).build_model(getattr(TINY, name)).eval()
    ir, vi = smooth_pair(2, *size)
    with torch.no_grad():
        fused = model.fuse(ir, vi)
    assert fused.shape == ir.shape and torch.isfinite(fused).all()


@pytest.mark.parametrize("name", LEARNED)
def test_adam_steps_lower_each_phase_loss(name):
    section = getattr(TINY, name)
    torch.manual_seed(0)
    model = recipe(name).build_model(section)
    ir, vi = smooth_pair(4, section.crop_size, section.crop_size)  # the crops it trains on
    for phase in recipe(name).phases(section):
        groups = phase.param_groups(model)
        optimizer = torch.optim.Adam(groups)
        losses = []
        for _ in range(8):
            torch.manual_seed(1)  # the same draws (views, source order, interpolations) every step
            if hasattr(model, "steps"):  # a loss whose schedule follows the step (DeFusion): one point of it
                model.steps.zero_()
            loss, terms = phase.loss(model, ir, vi)
            assert torch.isfinite(loss) and terms["total"] == pytest.approx(loss.item(), rel=1e-5)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0], (phase.name, losses)


def test_combine_rules():
    a, b = torch.full((1, 2, 5, 5), 2.0), torch.full((1, 2, 5, 5), -1.0)
    assert torch.equal(combine(a, b, "sum"), a + b)
    assert torch.equal(combine(a, b, "average"), (a + b) / 2)
    # l1_norm weights by activity: |2| vs |-1| -> (2*2 + 1*(-1)) / 3 = 1
    assert torch.allclose(combine(a, b, "l1_norm"), torch.ones_like(a))
    with pytest.raises(ValueError, match="unknown fusion rule"):
        combine(a, b, "max")


def test_l1_norm_activity_is_summed_over_channels_as_the_authors_code():
    """One weight map per source, shared by every channel: a source active in one channel only
    still takes its share in the others (a per-channel rule would give b all of channel 1)."""
    a = torch.zeros(1, 2, 5, 5)
    a[:, 0] = 3.0
    b = torch.ones(1, 2, 5, 5)
    merged = combine(a, b, "l1_norm")  # activities 3 and 2 everywhere: weights 0.6 and 0.4
    assert torch.allclose(merged[:, 0], torch.full((1, 5, 5), 0.6 * 3 + 0.4 * 1))
    assert torch.allclose(merged[:, 1], torch.full((1, 5, 5), 0.4))


def test_didfuse_reflects_only_its_first_and_last_convolution():
    from fusion.methods.didfuse.model import DIDFuse

    model = DIDFuse(channels=8)
    reflecting = [m for m in model.modules() if isinstance(m, torch.nn.ReflectionPad2d)]
    convolutions = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(reflecting) == 2 and len(convolutions) == 7
    assert [c.padding for c in convolutions] == [(0, 0)] + [(1, 1)] * 5 + [(0, 0)]


def test_didfuse_detail_term_is_the_authors_l1_with_weight_one_half():
    from fusion.methods.didfuse.losses import didfuse_loss

    section = TINY.didfuse
    assert ExperimentConfig().didfuse.alpha1 == 0.5
    torch.manual_seed(0)
    model = recipe("didfuse").build_model(section)
    ir, vi = smooth_pair(2, 32, 32)
    _, terms = didfuse_loss(model, ir, vi, section)
    terms = {name: float(value) for name, value in terms.items()}  # 0-d tensors
    parts_ir, _ = model(ir)
    parts_vi, _ = model(vi)
    assert terms["detail"] == pytest.approx(
        float(torch.tanh((parts_ir.detail - parts_vi.detail).abs().mean()).detach())
    )


def test_rfnnest_fuses_min_max_rescaled_and_large_images_in_quarters():
    from fusion.methods.rfnnest.model import quarters

    torch.manual_seed(0)
    model = recipe("rfnnest").build_model(TINY.rfnnest).eval()
    ir, vi = smooth_pair(1, 40, 48)
    with torch.no_grad():
        fused = model.fuse(ir, vi)
        raw = model.fuse_raw(ir, vi)
    assert float(fused.min()) == 0.0 and float(fused.max()) == pytest.approx(1.0, abs=1e-3)
    assert torch.allclose(fused, (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-3)
    cover = torch.zeros(480, 640)
    for rows, cols in quarters(480, 640):
        cover[rows, cols] += 1
    assert cover.min() == 1 and cover.max() == 4 and int((cover[:, 0] == 2).sum()) == 5
    ir, vi = smooth_pair(1, 24, 520)  # over 512 px: fused in four quarters
    with torch.no_grad():
        whole = model.fuse_raw(ir, vi)
        tiled = model.fuse(ir, vi)
    assert tiled.shape == ir.shape
    assert not torch.allclose(tiled, (whole - whole.min()) / (whole.max() - whole.min()), atol=1e-4)


def test_rfnnest_ms_ssim_uses_the_scales_a_crop_allows():
    from fusion.methods.msssim import MS_SSIM_WEIGHTS, scale_weights
    from fusion.methods.rfnnest.losses import ms_ssim

    assert scale_weights(256) == pytest.approx(tuple(w / sum(MS_SSIM_WEIGHTS) for w in MS_SSIM_WEIGHTS))
    assert len(scale_weights(128)) == 4 and len(scale_weights(64)) == 3
    assert sum(scale_weights(64)) == pytest.approx(1.0)
    ir, vi = smooth_pair(2, 64, 64)
    assert float(ms_ssim(ir, ir)) == pytest.approx(1.0, abs=1e-5)
    assert 0.5 < float(ms_ssim(ir, vi)) < 1.0  # normalised: (x + 1) / 2 per scale
    with pytest.raises(ValueError, match="too small"):
        scale_weights(8)


def test_rfnnest_stage_one_pixel_term_is_on_the_networks_0_255_scale():
    from fusion.methods.rfnnest.losses import autoencoder_loss

    section = TINY.rfnnest
    torch.manual_seed(0)
    model = recipe("rfnnest").build_model(section)
    ir, vi = smooth_pair(2, 32, 32)
    _, terms = autoencoder_loss(model, ir, vi, section)
    terms = {name: float(value) for name, value in terms.items()}  # 0-d tensors
    images = torch.cat([ir, vi])
    with torch.no_grad():
        expected = float(((model(images) - images) * 255).pow(2).mean())
    assert terms["pixel"] == pytest.approx(expected, rel=1e-4)


def test_auif_draws_random_resized_crops_as_its_authors():
    from configs.schema import AUGMENTS
    from fusion.data import CROPS, ResizedCrops

    assert set(CROPS) == set(AUGMENTS)
    assert ExperimentConfig().auif.augment == "resized_crop"
    assert recipe("auif").phases(ExperimentConfig().auif)[0].augment == "resized_crop"
    gradient = np.tile(np.arange(200, dtype=np.uint8), (100, 1))
    crops = ResizedCrops([gradient], [gradient], crop=32, seed=0)
    ir, vi = crops[0]
    assert ir.shape == vi.shape == (1, 32, 32) and ir.dtype == torch.float32
    assert torch.equal(crops[0][0], ir)  # drawn from (seed, epoch, index)
    crops.set_epoch(1)
    assert not torch.equal(crops[0][0], ir)
    # a crop wider than 32 px resized to 32: neighbouring columns differ by more than 1 level
    steps = [float((a.diff(dim=-1)).mean()) * 255 for a in (ir, vi)]
    assert max(steps) > 1.0, steps
    with pytest.raises(ConfigError, match="auif.augment"):
        load_config(None, ["auif.augment=flip"])


@pytest.mark.parametrize("name", LEARNED)
def test_fusing_before_training_is_an_error_naming_the_stage(name, tmp_path):
    with pytest.raises(DataError, match=f"fusion:{name}"):
        build_method(name, checkpoint=tmp_path / "fusion" / name / "model.pt")


def test_unknown_key_in_a_baseline_section_is_an_error():
    with pytest.raises(ConfigError, match="auif.depth"):
        load_config(None, ["auif.depth=3"])
    with pytest.raises(ConfigError, match="fusion_rule"):
        load_config(None, ["didfuse.fusion_rule=max"])


@pytest.mark.parametrize("name", LEARNED)
def test_train_then_fuse_a_photo_pair_with_visible_colour(name, photo_pairs, tmp_path):
    out = tmp_path / name
    summary = train(name, TINY, photo_pairs, out, progress=False)
    assert summary["epochs"] >= 1 and np.isfinite(summary["final_loss"])
    assert {"model.pt", "checkpoint.pt", "history.csv", "summary.json"} <= {p.name for p in out.iterdir()}
    method = build_method(name, checkpoint=out / "model.pt")
    pair = list_pairs(photo_pairs)[0]
    fused = method.fuse_pair(pair, "all")
    vi = read_vi(pair.vi)
    assert fused.dtype == np.uint8 and fused.shape == vi.shape
    # luminance fusion with the visible chroma put back, as SSPFusion: where no channel of the
    # fused colour is clipped, Cb and Cr are the visible image's within rounding
    assert isinstance(method, LuminanceMethod)
    unclipped = ((fused > 0) & (fused < 255)).all(axis=2)
    chroma = np.abs(rgb_to_ycbcr(fused)[..., 1:] - rgb_to_ycbcr(vi)[..., 1:])[unclipped]
    assert unclipped.any() and np.percentile(chroma, 99) < 3 / 255
    with pytest.raises(DataError, match="not of"):
        build_method("didfuse" if name != "didfuse" else "auif", checkpoint=out / "model.pt")


def test_resumed_training_equals_an_uninterrupted_one(photo_pairs, tmp_path):
    config = load_config(REPO / "configs" / "tiny.yaml", ["runtime.threads=1", "auif.epochs=2"])
    whole = train("auif", config, photo_pairs, tmp_path / "whole", progress=False)
    assert train("auif", config, photo_pairs, tmp_path / "split", progress=False, stop_after=1) == {
        "stopped_after_epoch": 1
    }
    resumed = train("auif", config, photo_pairs, tmp_path / "split", resume=True, progress=False)
    assert resumed["final_loss"] == whole["final_loss"]
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_plan_trains_each_learned_method_before_fusing_with_it(synthetic_root, tmp_path):
    from pipelines.engine import RunLayout, UpstreamError, build_plan, environment, plan_status, run_plan

    env = environment(TINY)
    stages = build_plan(TINY, RunLayout(tmp_path), synthetic_root, ["auif", "average"], env, progress=False)
    keys = [stage.key for stage in stages]
    assert "fusion:auif" in keys and "fusion:average" not in keys
    assert keys.index("fusion:auif") < keys.index("fuse:auif")
    plan_status(stages, [])
    with pytest.raises(UpstreamError, match="fusion:auif"):
        run_plan(stages, ["fuse:auif"], env, "run_all", log=lambda line: None)
    assert not (tmp_path / "fused" / "auif" / "train").exists()


def test_umf_saliency_is_histogram_contrast_and_its_weights_are_stored_as_8_bits():
    from fusion.methods.saliency import saliency
    from fusion.methods.umf.losses import saliency_weights

    # grey levels 0, 0, 0, 255: contrast 255 x 1 for the zeros, 255 x 3 for the 255
    image = torch.tensor([0.0, 0.0, 0.0, 1.0]).view(1, 1, 1, 4)
    assert torch.allclose(saliency(image), torch.tensor([1 / 3, 1 / 3, 1 / 3, 1.0]).view(1, 1, 1, 4))
    assert torch.equal(saliency(torch.full((1, 1, 2, 2), 0.5)), torch.zeros(1, 1, 2, 2))  # no contrast
    ir, vi = smooth_pair(2, 16, 16)
    w_ir, w_vi = saliency_weights(ir, vi)
    assert torch.equal(w_ir * 255, torch.floor(w_ir * 255)) and float((w_ir + w_vi).max()) <= 1.0
    assert float((w_ir + w_vi).min()) >= 1.0 - 2 / 255


def test_umf_loss_terms_are_the_authors():
    from fusion.methods.umf.losses import umf_loss

    section = TINY.umf
    assert (ExperimentConfig().umf.alpha, ExperimentConfig().umf.beta, ExperimentConfig().umf.theta) == (
        1,
        20,
        5,
    )
    torch.manual_seed(0)
    model = recipe("umf").build_model(section)
    ir, vi = smooth_pair(2, 32, 32)
    total, terms = umf_loss(model, ir, vi, section)
    terms = {name: float(value) for name, value in terms.items()}  # 0-d tensors
    assert 0 <= terms["ms_ssim"] < 0.1  # a [0, 255] range on [0, 1] images: SSIM near 1
    expected = (
        section.alpha * terms["ms_ssim"] + section.beta * terms["l1"] + section.theta * terms["gradient"]
    )
    assert total.item() == pytest.approx(expected, rel=1e-5)


def test_itfuse_token_blocks_attend_within_one_token_windows():
    """Window size 1 as in the authors' code: the softmax is over one key, so attention returns
    the value projection, whatever the query, the key and the position bias."""
    from fusion.methods.itfuse.model import TokenBlock

    torch.manual_seed(0)
    block = TokenBlock(16, heads=8)
    tokens = torch.randn(2, 5, 7, 16)
    value = block.qkv(tokens)[..., 32:]
    assert torch.allclose(block.attention(tokens), block.proj(value), atol=1e-6)
    # a (B, C, H, W) map is read as the authors' view: tokens are 16 consecutive pixels of a row
    x = torch.arange(2 * 16 * 4 * 32, dtype=torch.float32).view(2, 16, 4, 32)
    assert torch.equal(x.reshape(2, 4, 32, 16)[0, 0, 0], x[0, 0, 0, :16])


def test_cmtfusion_gives_three_scales_and_fuses_min_max_rescaled():
    torch.manual_seed(0)
    model = recipe("cmtfusion").build_model(TINY.cmtfusion).eval()
    ir, vi = smooth_pair(1, 64, 80)
    with torch.no_grad():
        outputs = model(vi * 2 - 1, ir * 2 - 1)
        fused = model.fuse(ir, vi)
    assert [tuple(o.shape[-2:]) for o in outputs] == [(64, 80), (32, 40), (16, 20)]
    assert float(fused.min()) == 0.0 and float(fused.max()) == pytest.approx(1.0, abs=1e-4)


def test_cmtfusion_frequency_loss_compares_the_authors_scaled_spectra():
    """The fused spectrum's real part is scaled by both Gaussians, each source's by one (the
    authors' in-place aliasing): even a copy of both sources has a loss, and its gradient flows."""
    from fusion.methods.cmtfusion.losses import frequency_loss

    torch.manual_seed(0)
    a = (torch.rand(2, 1, 16, 16) * 2 - 1).requires_grad_()
    copy = frequency_loss(a, a.detach(), a.detach())
    assert copy.item() > 0
    copy.backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()
    flat = torch.zeros(2, 1, 16, 16)
    assert float(frequency_loss(flat, flat, flat)) == 0.0


def test_cmtfusion_perceptual_network_is_part_of_its_training_identity(synthetic_root, tmp_path):
    from pipelines.engine import RunLayout, environment, fusion_stage
    from pipelines.engine.identity import Manifests

    def digest(choice: str) -> dict:
        config = load_config(REPO / "configs" / "tiny.yaml", [f"cmtfusion.perceptual={choice}"])
        stage = fusion_stage(
            config, RunLayout(tmp_path), synthetic_root, Manifests(), environment(config), method="cmtfusion"
        )
        return stage.identify({}).parts["config"]

    with_network, without = digest("efficientnet"), digest("none")
    assert with_network["pretrained_weights"] and "pretrained_weights" not in without
    with pytest.raises(ConfigError, match="cmtfusion.perceptual"):
        load_config(None, ["cmtfusion.perceptual=vgg19"])


def test_u2fusion_feeds_the_visible_image_first_and_weighs_the_more_informative_source():
    from fusion.methods.u2fusion.losses import information_weights

    torch.manual_seed(0)
    model = recipe("u2fusion").build_model(TINY.u2fusion).eval()
    ir, vi = smooth_pair(1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.fuse(ir, vi), model(vi, ir))
    flat = torch.full_like(ir, 0.5)
    textured = (torch.rand_like(ir) > 0.5).float()
    w_textured, w_flat = information_weights(textured, flat, scale=1.0)
    assert float(w_textured) > 0.9 and float(w_textured + w_flat) == pytest.approx(1.0)


def test_tardal_each_network_learns_only_from_its_own_loss():
    from fusion.methods.tardal.losses import critic_loss, held, infrared_mask

    torch.manual_seed(0)
    model = recipe("tardal").build_model(TINY.tardal)
    ir, vi = smooth_pair(2, 32, 32)
    mask = infrared_mask(ir)
    assert float(mask.amin()) == 0.0 and float(mask.amax()) == 1.0
    with held(model.critics()):
        (-model.target_critic(model(ir, vi) * mask).mean()).backward()
    assert all(p.grad is None for p in model.critics())  # the generator's term leaves the critics
    assert any(p.grad is not None for p in model.generator.parameters())
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        fake = model(ir, vi)
    critic_loss(model.detail_critic, vi, fake).backward()
    assert all(p.grad is None for p in model.generator.parameters())
    assert all(p.grad is not None for p in model.detail_critic.parameters())
    assert all(p.requires_grad for p in model.critics())  # held only inside


def test_defusion_views_and_schedule_are_the_authors():
    from fusion.methods.defusion.losses import mixing_masks, schedule

    torch.manual_seed(0)
    m1, m2 = mixing_masks(6, (64, 80), "cpu")
    assert m1.shape == (6, 1, 64, 80) and set(m1.unique().tolist()) <= {0.0, 1.0}
    assert bool(((m1 + m2) >= 1).all())  # no pixel is hidden from both views
    values = lambda step, scale=1.0: tuple(float(v) for v in schedule(step, scale))  # noqa: E731
    assert values(2999) == (0.0, 0.0) and values(3000)[0] == pytest.approx(0.15 * (3 / 7) ** 2)
    assert values(7000)[0] == pytest.approx(0.15)
    assert values(16999)[1] == 0.0 and values(17000)[1] == pytest.approx(0.25)
    assert values(24000)[1] == pytest.approx(1.0)
    assert values(40001)[0] == pytest.approx(0.015)
    assert values(170, 0.01) == pytest.approx(values(17000))  # schedule_scale shrinks every threshold


def test_defusion_views_share_one_fine_grid_size_per_image(monkeypatch):
    """The authors draw the 26/27-cell size once per image (grid_num2) for both views: with each
    grid replaced by its cell count, both masks are 13 x that size, image by image."""
    from fusion.methods.defusion import losses

    monkeypatch.setattr(
        losses, "_grids", lambda cells, rates, size: torch.full((len(rates), 1, *size), float(cells))
    )
    torch.manual_seed(0)
    m1, m2 = losses.mixing_masks(64, (4, 4), "cpu")
    assert torch.equal(m1, m2)
    assert set(m1.unique().tolist()) == {13.0 * 26, 13.0 * 27}  # both sizes are drawn


def test_defusion_counts_its_steps_in_the_model_so_a_resume_goes_on_from_them():
    from fusion.methods.defusion.losses import defusion_loss

    model = recipe("defusion").build_model(TINY.defusion)
    ir, vi = smooth_pair(1, 32, 32)
    for _ in range(3):
        defusion_loss(model, ir, vi, TINY.defusion)
    assert int(model.steps) == 3
    assert int(model.state_dict()["steps"]) == 3
    model.eval()
    defusion_loss(model, ir, vi, TINY.defusion)
    assert int(model.steps) == 3  # evaluating is no step


def test_defusion_never_fuses_with_a_fused_head_its_schedule_did_not_reach(photo_pairs, tmp_path):
    from fusion.methods import MethodError

    config = load_config(REPO / "configs" / "tiny.yaml", ["runtime.threads=1", "defusion.schedule_scale=1.0"])
    with pytest.raises(
        MethodError, match=r"trained \d+ steps but its loss trains the fused image only from step 17000"
    ):
        train("defusion", config, photo_pairs, tmp_path / "short", progress=False)
    assert not (tmp_path / "short" / "model.pt").exists()
    assert (tmp_path / "short" / "checkpoint.pt").is_file()


def test_defusion_guard_watches_the_common_image_until_the_fused_term_enters():
    from fusion.methods.defusion.recipe import watched_images

    section = TINY.defusion
    model = recipe("defusion").build_model(section).eval()
    ir, vi = smooth_pair(1, 32, 32)
    with torch.no_grad():
        grey = ir.expand(-1, 3, -1, -1)
        common = watched_images(model, torch.cat([ir, vi]), section)
        assert torch.allclose(common[:1], model(grey, grey)[0].mean(1, keepdim=True))
        assert common.shape == (2, 1, 32, 32)  # one image per probe image
        model.steps.fill_(10**6)
        assert watched_images(model, torch.cat([ir, vi]), section).shape == (1, 1, 32, 32)  # one per pair
