"""The guard every learned fusion method trains under (fusion/guard.py): saturated, black or flat
images stop training with an error naming the method and the epoch, and no model is written."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
import torch

from configs.schema import load_config
from fusion.guard import CollapseGuard, FusionCollapseError, fault, probe_pairs
from fusion.methods import entry, trainable_methods
from fusion.methods.learned import recipe

from .conftest import REPO


def structured(batch: int = 2, side: int = 32) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    return (0.5 + 0.4 * torch.sin(9 * xx) * torch.cos(7 * yy)).expand(batch, 1, -1, -1).clone()


def test_fault_names_what_is_wrong_with_the_images():
    ir, vi = structured(), structured() * 0.5
    assert fault((ir + vi) / 2, [ir, vi]) is None
    assert fault(torch.ones_like(ir), [ir, vi]) == "saturated"
    assert fault(torch.full_like(ir, 1.2), [ir, vi]) == "saturated"  # clamped as saved
    assert fault(torch.zeros_like(ir), [ir, vi]) == "black"
    assert fault(torch.full_like(ir, 0.4), [ir, vi]) == "flat"
    mostly_white = ir.clone()
    mostly_white[..., :20, :] = 1.0
    assert fault(mostly_white, [ir, vi]) == "saturated"


def test_flat_means_nothing_in_the_images_follows_the_sources():
    ir, vi = structured(), structured().flip(-1)
    pattern = 0.45 + 0.004 * torch.sin(torch.arange(32.0) * 2.1).expand(2, 1, 32, 32)  # input-blind
    assert fault(pattern, [ir, vi]) == "flat"
    assert fault(0.45 + 0.02 * (ir - 0.5) + 0.02 * (vi - 0.5), [ir, vi]) is None  # dim, but fused
    reconstructions = torch.cat([ir, vi])  # image i of pair i mod N
    assert fault(reconstructions, [ir, vi]) is None


def test_what_every_source_shares_is_no_fault():
    ir = structured()
    black = torch.zeros_like(ir)
    assert fault(torch.zeros_like(ir), [black, ir]) == "black"  # the infrared is not black
    assert fault(torch.zeros_like(ir), [black, black]) is None


def test_a_fault_stops_training_after_patience_epochs_or_at_its_end():
    ir = structured()
    flat = torch.full_like(ir, 0.3)
    kept = []
    guard = CollapseGuard("X", [ir], keep_evidence=lambda: kept.append(1), patience=3)
    guard.check(1, "fusion", "fused images", flat, last=False)
    guard.check(2, "fusion", "fused images", flat, last=False)  # may still leave the floor
    guard.check(3, "fusion", "fused images", ir, last=False)  # it did: the count restarts
    guard.check(4, "fusion", "fused images", flat, last=False)
    guard.check(5, "fusion", "fused images", flat, last=False)
    with pytest.raises(FusionCollapseError, match=r"X collapsed in epoch 6 \(fusion phase\).*flat.*3 epoch"):
        guard.check(6, "fusion", "fused images", flat, last=False)
    assert kept == [1]
    guard = CollapseGuard("X", [ir], patience=3)
    guard.check(1, "structure", "reconstructions", flat, last=False)
    guard.check(2, "structure", "reconstructions", flat, last=False)  # a phase's end is not special
    guard.check(3, "fusion", "fused images", flat, last=False)  # a new phase starts its count
    with pytest.raises(FusionCollapseError, match="epoch 4 .fusion phase.: its fused images"):
        guard.check(4, "fusion", "fused images", flat, last=True)  # the model would be written


def test_a_method_warm_up_lets_a_fault_go_on_but_not_past_the_last_epoch():
    ir = structured()
    flat = torch.full_like(ir, 0.3)
    guard = CollapseGuard("X", [ir], patience=2, warmup_steps=30)
    for epoch in range(1, 3):
        guard.check(epoch, "fusion", "fused images", flat, last=False, steps=10 * epoch)
    with pytest.raises(FusionCollapseError, match="epoch 3 "):
        guard.check(3, "fusion", "fused images", flat, last=False, steps=30)
    guard = CollapseGuard("X", [ir], patience=2, warmup_steps=30)
    guard.check(1, "fusion", "fused images", flat, last=False, steps=10)
    with pytest.raises(FusionCollapseError, match="epoch 2 "):
        guard.check(2, "fusion", "fused images", flat, last=True, steps=20)


def test_probe_pairs_are_central_squares_of_one_size():
    import numpy as np

    irs = [np.full((40, 60), 10, np.uint8), np.full((50, 30), 20, np.uint8)]
    ir, vi = probe_pairs(irs, [a // 2 for a in irs], size=128)
    assert ir.shape == vi.shape == (2, 1, 30, 30)
    assert float(ir[1].max()) == pytest.approx(20 / 255)


def _sabotage(name: str, model: torch.nn.Module) -> torch.nn.Module:
    """A network whose output layer is made to saturate (sigmoid after a huge bias) or, where the
    output is min-max rescaled (RFN-Nest), to go flat (a zero output layer)."""
    with torch.no_grad():
        if name in ("sspfusion", "umf", "itfuse", "u2fusion", "tardal"):  # a clamp, tanh or sigmoid last
            if name == "tardal":
                last = model.generator.fuse[3][0]
            else:
                last = model.decoder.out if name == "sspfusion" else model.out
            last.weight.zero_()
            last.bias.fill_(50.0)
        elif name == "defusion":  # ReLU heads made flat: every image it makes (the guard watches two)
            for head in (model.projection, model.fusion_head):
                head[0].weight.zero_()
                head[0].bias.fill_(0.3)
        elif name in ("rfnnest", "cmtfusion"):  # min-max rescaled: a zero output layer is flat
            conv = model.decoder.out[1] if name == "rfnnest" else model.heads[0].layers[6]
            conv.weight.zero_()
            conv.bias.zero_()
        else:  # DIDFuse and AUIF: convolution, BatchNorm, sigmoid
            norm = next(m for m in reversed(list(model.modules())) if isinstance(m, torch.nn.BatchNorm2d))
            norm.bias.fill_(50.0)
    return model


GUARDED = trainable_methods()
# lr so small that the sabotaged output layer stays as it is; two epochs in the guarded phase
STILL = [
    "runtime.threads=1",
    "fusion.lr=1e-12",
    "fusion.structure_epochs=0",
    "didfuse.lr=1e-12",
    "didfuse.epochs=2",
    "auif.lr=1e-12",
    "auif.epochs=2",
    "rfnnest.lr=1e-12",
    "rfnnest.autoencoder_epochs=2",
    "umf.lr=1e-12",
    "umf.epochs=2",
    "itfuse.lr=1e-12",
    "itfuse.epochs=2",
    "cmtfusion.lr=1e-12",
    "cmtfusion.epochs=2",
    "u2fusion.lr=1e-12",
    "u2fusion.epochs=2",
    "tardal.lr=1e-12",
    "tardal.epochs=2",
    "defusion.lr=1e-12",
    "defusion.epochs=2",
]


@pytest.mark.parametrize("name", GUARDED)
def test_a_learned_method_made_to_collapse_stops_with_the_error(name, photo_pairs, tmp_path, monkeypatch):
    config = load_config(REPO / "configs" / "tiny.yaml", STILL)
    out = tmp_path / name
    from fusion.training import train

    method = recipe(name)
    module = importlib.import_module(entry(name).recipe.split(":")[0])
    sabotaged = dataclasses.replace(
        method, build_model=lambda section: _sabotage(name, method.build_model(section))
    )
    monkeypatch.setattr(module, "RECIPE", sabotaged)
    title, run = method.title, lambda: train(name, config, photo_pairs, out, progress=False)
    with pytest.raises(FusionCollapseError, match=rf"{title} collapsed in epoch \d+ .*(saturated|flat)"):
        run()
    assert not (out / "model.pt").exists()
    assert (out / "history.csv").is_file()  # the evidence is kept
