"""SSPFusion on real MSRS crops (msrs-test-40 of --real-data): the collapse to black images is gone.

With a sigmoid output, a phase 1 this long drove the decoder's logits to about -1500 on these
crops (reconstructions black from step ~16); phase 2 then started dead and L_fus stayed flat. The
test fails on that code and passes with the straight-through clamp output (model.Decoder). The
mean standard deviation of the output images is the "not constant" check (a black image has 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from configs.schema import FusionConfig
from fusion.colour import luminance
from fusion.sspfusion import SSPFusion, total_loss
from fusion.sspfusion.recipe import phases as sspfusion_phases
from fusion.training import start_phase


def msrs_crops(
    folder: Path, size: int = 64, per_pair: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_pair`` random size x size crops of each real pair (day 00085D, night 00722N) as
    (infrared, visible luminance) batches in [0, 1]."""
    rng = np.random.default_rng(seed)
    irs, vis = [], []
    for name in ("00085D.png", "00722N.png"):
        ir = np.asarray(Image.open(folder / "ir" / name).convert("L"))
        vi = luminance(np.asarray(Image.open(folder / "vi" / name).convert("RGB")))
        for _ in range(per_pair):
            top, left = rng.integers(0, ir.shape[0] - size), rng.integers(0, ir.shape[1] - size)
            irs.append(ir[top : top + size, left : left + size])
            vis.append(vi[top : top + size, left : left + size])
    return tuple(torch.from_numpy(np.stack(a).astype(np.float32) / 255)[:, None] for a in (irs, vis))


def train_steps(model, config, ir, vi, phase: str, steps: int, lr: float) -> list[dict]:
    optimizer = start_phase(model, next(p for p in sspfusion_phases(config) if p.name == phase))
    for group in optimizer.param_groups:
        group["lr"] = lr
    history = []
    for _ in range(steps):
        out = model(ir, vi, reconstruct=phase == "structure")
        loss, terms = total_loss(out, ir, vi, config, phase)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        images = (
            torch.cat([out.reconstruction_ir, out.reconstruction_vi]) if phase == "structure" else out.fused
        )
        history.append(
            {name: float(value) for name, value in terms.items()}
            | {"std": float(images.detach().flatten(1).std(dim=1).mean())}
        )
    return history


@pytest.mark.real_data  # ~15 s on an idle 2-core CPU, ~50 s on a loaded one
def test_stage_two_trains_after_a_long_stage_one_on_real_msrs(real_data):
    torch.manual_seed(0)
    config = FusionConfig(channels=[16, 32, 64], rcab_per_level=1, reduction=4)
    model = SSPFusion.from_config(config)
    ir, vi = msrs_crops(real_data / "msrs-test-40")
    structure = train_steps(model, config, ir, vi, "structure", 20, lr=1e-3)
    assert min(step["std"] for step in structure[-5:]) > 0.02, structure[-5:]  # not flat
    fusion = train_steps(model, config, ir, vi, "fusion", 12, lr=2e-4)  # the paper's lr
    first, last = fusion[0]["fus"], np.mean([step["fus"] for step in fusion[-3:]])
    assert last < first - 0.05, [round(step["fus"], 3) for step in fusion]
    assert fusion[-1]["std"] > 0.005, fusion[-1]  # not constant (a black image: 0)
