"""What the learned fusion methods share: their training recipes' shape, feature-merging rules,
and turning a trained checkpoint into a registry method.

A learned method (SSPFusion, DIDFuse, AUIF, RFN-Nest) is trained by a ``fusion:<name>`` stage into
``<out>/fusion/<name>/model.pt`` and then fuses luminance like every other method: the visible
colour comes back through :class:`fusion.methods.base.LuminanceMethod`. The baselines describe
their training as a :class:`Recipe` (``fusion/methods/<name>/recipe.py``) that one loop runs
(:mod:`fusion.methods.training`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import kornia
import numpy as np
import torch
from torch import nn

from configs.runtime import file_sha256, load_checkpoint, pick_device
from configs.schema import FUSION_RULES, ExperimentConfig, section_from_dict
from fusion.methods.base import LuminanceMethod
from msrs.layout import DataError

# the learned baselines of Table 2 built in here: name (= config section) -> recipe
RECIPES: dict[str, str] = {
    "didfuse": "fusion.methods.didfuse.recipe:RECIPE",
    "auif": "fusion.methods.auif.recipe:RECIPE",
    "rfnnest": "fusion.methods.rfnnest.recipe:RECIPE",
}


@dataclass(frozen=True)
class Phase:
    """One training phase: how many epochs, what trains at which lr, and the loss.

    ``param_groups(model)`` gives Adam's groups (``params`` and ``lr``); parameters in no group
    are frozen for the phase. ``lr_factor(epoch)`` scales every group's lr at an epoch counted
    from the phase's start (step decays). ``loss(model, ir, vi)`` returns the loss and its
    named terms (floats) for one batch of (B, 1, h, w) crops in [0, 1].
    """

    name: str
    epochs: int
    param_groups: Callable[[nn.Module], list[dict]]
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]]
    lr_factor: Callable[[int], float]
    batch_size: int
    crop_size: int


@dataclass(frozen=True)
class Recipe:
    """A learned baseline: its name (registry and config section), its paper's title and
    parameter count (SSPFusion paper, Table 5), the model builder and the training phases."""

    name: str
    title: str
    paper_parameters: int
    build_model: Callable[[object], nn.Module]
    phases: Callable[[object], list[Phase]]


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise KeyError(f"'{name}' is not a learned baseline (known: {', '.join(RECIPES)})")
    module_name, attribute = RECIPES[name].split(":")
    return getattr(importlib.import_module(module_name), attribute)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def step_decay(milestones: list[int], gamma: float) -> Callable[[int], float]:
    """lr factor gamma^k after the k-th milestone epoch (torch's MultiStepLR, per epoch)."""
    return lambda epoch: gamma ** sum(epoch >= m for m in milestones)


def combine(a: torch.Tensor, b: torch.Tensor, rule: str) -> torch.Tensor:
    """Merge two sources' feature maps: ``sum``, ``average``, or ``l1_norm`` (weights from the
    3x3-averaged absolute activity of each map, the l1-norm strategy DIDFuse and AUIF share)."""
    if rule == "sum":
        return a + b
    if rule == "average":
        return (a + b) / 2
    if rule == "l1_norm":
        activity_a = kornia.filters.box_blur(a.abs(), (3, 3))
        activity_b = kornia.filters.box_blur(b.abs(), (3, 3))
        total = (activity_a + activity_b).clamp_min(1e-12)
        return (activity_a * a + activity_b * b) / total
    raise ValueError(f"unknown fusion rule '{rule}' (valid: {', '.join(FUSION_RULES)})")


def require_checkpoint(name: str, title: str, checkpoint: str | Path) -> Path:
    """The checkpoint path, or a DataError naming the training stage that makes it."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise DataError(
            f"{checkpoint}: {title} model not found; it is made by the training stage "
            f"fusion:{name} (python pipelines/run_all.py --only fusion:{name}, or "
            f"python pipelines/train_fusion.py --method {name}), or pass --checkpoint"
        )
    return checkpoint


def luminance_method(
    name: str,
    fuse: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
    checkpoint: Path,
) -> LuminanceMethod:
    """A registry method running ``fuse(ir, vi) -> fused`` ((1, 1, H, W) tensors in [0, 1]) at
    full resolution on ``device``; its fingerprint is the checkpoint's digest, so retraining
    refuses the old fused files."""

    @torch.inference_mode()
    def fuse_y(ir_y: np.ndarray, vi_y: np.ndarray, **_fingerprint) -> np.ndarray:
        to = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None].to(device)  # noqa: E731
        return fuse(to(ir_y), to(vi_y)).clamp(0, 1)[0, 0].float().cpu().numpy()

    return LuminanceMethod(name, fuse_y, params={"checkpoint_sha256": file_sha256(checkpoint)})


def load_trained(name: str, path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild a baseline saved by :func:`fusion.methods.training.train_learned` (weights and the
    config section that built them; no code is loaded)."""
    state = load_checkpoint(path, device)
    if state.get("method") != name:
        raise DataError(f"{path}: a model of '{state.get('method')}', not of '{name}'")
    section_type = type(getattr(ExperimentConfig(), name))
    model = recipe(name).build_model(section_from_dict(section_type, state["config"], name))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def build_trained(name: str, checkpoint: str | Path, device: str = "auto") -> LuminanceMethod:
    """The registry method of the learned baseline ``name`` trained into ``checkpoint``."""
    checkpoint = require_checkpoint(name, recipe(name).title, checkpoint)
    where = pick_device(device)
    model = load_trained(name, checkpoint, where)
    return luminance_method(name, model.fuse, where, checkpoint)
