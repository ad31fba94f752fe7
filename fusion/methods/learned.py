"""What the learned fusion methods share: their training recipes' shape, feature-merging rules,
and turning a trained checkpoint into a registry method.

A learned method (SSPFusion, DIDFuse, AUIF, RFN-Nest, UMF, ITFuse, CMTFusion) is trained by a
``fusion:<name>`` stage into ``<out>/fusion/<name>/model.pt`` and then fuses luminance like every
other method: the visible colour comes back through :class:`fusion.methods.base.LuminanceMethod`.
Each describes its training as a :class:`Recipe` (``fusion/methods/<name>/recipe.py``,
``fusion/sspfusion/recipe.py``) that one loop runs (:mod:`fusion.training`).
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

from configs.schema import FUSION_RULES, ExperimentConfig, method_section, section_from_dict
from fusion.methods.base import LuminanceMethod
from msrs.layout import DataError
from runtime.checkpoints import load_checkpoint
from runtime.device import pick_device
from runtime.files import file_sha256


@dataclass(frozen=True)
class Phase:
    """One training phase: how many epochs, what trains at which lr, and the loss.

    ``param_groups(model)`` gives Adam's groups (``params``, ``lr`` and any other Adam setting,
    e.g. ``betas``); parameters in no group are frozen for the phase. ``lr_schedule(lr, epoch)``
    is a group's lr at an epoch counted from the phase's start, ``lr`` its configured value
    (:func:`fixed`, :func:`step_decay`, SSPFusion's cosine). ``loss(model, ir, vi)`` returns the loss
    and its named terms (0-d tensors, not floats: reading one would make the step wait for the
    GPU) for one batch of (B, 1, h, w) crops in [0, 1]; the ``model`` it gets runs under the
    run's autocast and hands back float32 (runtime.precision.autocast_view), so the loss itself
    is computed in float32. ``augment`` names how crops are drawn (:data:`fusion.data.CROPS`).
    ``begin(model)`` runs when the phase starts at its first epoch (not when a run resumes inside
    it). After every epoch the guard (fusion/guard.py) checks the fused images of the probe
    pairs, or, where ``reconstruct`` is given, ``reconstruct(model, images)``: the images of an
    auto-encoder phase whose fusion part does not train yet.
    """

    name: str
    epochs: int
    param_groups: Callable[[nn.Module], list[dict]]
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]]
    lr_schedule: Callable[[float, int], float]
    batch_size: int
    crop_size: int
    augment: str = "crop"
    reconstruct: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
    begin: Callable[[nn.Module], None] | None = None


def fuse_method(model: nn.Module, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """A baseline network's fused luminance: its ``fuse(ir, vi)`` method."""
    return model.fuse(ir, vi)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class Recipe:
    """A learned method: its name (registry), its paper's title and parameter count (SSPFusion
    paper, Table 5; None for a method not in it), the model builder and the training phases.
    ``section`` is the config section holding its settings (its name, ``fusion`` for SSPFusion).
    ``fuse(model, ir, vi)`` gives the fused luminance of (B, 1, H, W) batches in [0, 1].
    ``count_parameters(model)`` counts what Table 5 compares with;
    ``unused_parameters(section)`` what the authors' model object registers but never calls,
    where Table 5 counts those too (ITFuse, CMTFusion); ``pretrained_weights(section)``
    identifies pretrained weights the training uses (a digest, part of the stage identity);
    ``guard_warmup_steps``: optimiser steps of a phase during which the collapse guard lets a
    lasting fault go on (fusion/guard.py), for a network whose images start flat."""

    name: str
    title: str
    paper_parameters: int | None
    build_model: Callable[[object], nn.Module]
    phases: Callable[[object], list[Phase]]
    section: str = ""
    fuse: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] = fuse_method
    count_parameters: Callable[[nn.Module], int] = count_parameters
    unused_parameters: Callable[[object], int] = lambda section: 0
    pretrained_weights: Callable[[object], str | None] = lambda section: None
    guard_warmup_steps: int = 0

    @property
    def config_section(self) -> str:
        return self.section or self.name


def recipe(name: str) -> Recipe:
    """The training recipe of the trainable method ``name`` (fusion.methods registry)."""
    from fusion.methods import entry

    item = entry(name)
    if not item.trainable:
        raise KeyError(f"'{name}' is not a learned method")
    if isinstance(item.recipe, str):
        module_name, attribute = item.recipe.split(":")
        return getattr(importlib.import_module(module_name), attribute)
    return item.recipe


def network_recipe(name: str, title: str, network: type, loss: Callable, section: str) -> Recipe:
    """The recipe of a network registered with a loss (fusion.methods.register_method): built
    as ``network(section)``, fused by ``network(ir, vi)``, trained in one phase of the section's
    ``epochs`` at its ``lr``, batches of ``batch_size`` crops of ``crop_size``."""
    return Recipe(
        name,
        title,
        None,
        network,
        lambda config: one_phase("train", config, loss),
        section=section,
        fuse=lambda model, ir, vi: model(ir, vi),
    )


def fixed(lr: float, epoch: int) -> float:
    """A constant learning rate."""
    return lr


def one_phase(
    name: str,
    config,
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor, object], tuple[torch.Tensor, dict]],
    lr_schedule: Callable[[float, int], float] = fixed,
    **group,
) -> list[Phase]:
    """The phases of a method that trains every parameter at once: one phase of
    ``config.epochs`` at ``config.lr`` (through ``lr_schedule``), batches of
    ``config.batch_size`` crops of ``config.crop_size``; ``group`` adds optimiser settings
    (e.g. ``weight_decay``)."""
    return [
        Phase(
            name,
            config.epochs,
            param_groups=lambda model: [{"params": list(model.parameters()), "lr": config.lr, **group}],
            loss=lambda model, ir, vi: loss(model, ir, vi, config),
            lr_schedule=lr_schedule,
            batch_size=config.batch_size,
            crop_size=config.crop_size,
        )
    ]


def step_decay(milestones: list[int], gamma: float) -> Callable[[float, int], float]:
    """lr x gamma^k after the k-th milestone epoch (torch's MultiStepLR, per epoch)."""
    return lambda lr, epoch: lr * gamma ** sum(epoch >= m for m in milestones)


def combine(a: torch.Tensor, b: torch.Tensor, rule: str) -> torch.Tensor:
    """Merge two sources' feature maps: ``sum``, ``average``, or ``l1_norm``.

    ``l1_norm`` is the rule DIDFuse and AUIF share, as the authors' code computes it: one
    activity map per source, the 3x3 mean of the absolute activity *summed over channels*
    (zero-padded), weights every channel of that source by its share of the two activities.
    DECISION (ours): the denominator is clamped at 1e-12 where the authors' divides 0 by 0.
    """
    if rule == "sum":
        return a + b
    if rule == "average":
        return (a + b) / 2
    if rule == "l1_norm":
        activity = lambda x: kornia.filters.box_blur(  # noqa: E731
            x.abs().sum(1, keepdim=True), (3, 3), border_type="constant"
        )
        activity_a, activity_b = activity(a), activity(b)
        total = (activity_a + activity_b).clamp_min(1e-12)
        return (activity_a * a + activity_b * b) / total
    raise ValueError(f"unknown fusion rule '{rule}' (valid: {', '.join(FUSION_RULES)})")


def min_max(
    images: torch.Tensor, epsilon: float = 0.0, floor: float = 0.0, per_image: bool = True
) -> torch.Tensor:
    """``images`` (B, C, H, W) rescaled to [0, 1] by the minimum and maximum of each image (or
    of the whole batch): divided by max(range, ``floor``) + ``epsilon``. How RFN-Nest's authors
    (an ``epsilon``) and CMTFusion's (torchvision's ``normalize``: a ``floor``) turn their
    networks' raw output into an image."""
    dims = (1, 2, 3) if per_image else (0, 1, 2, 3)
    low, high = images.amin(dim=dims, keepdim=True), images.amax(dim=dims, keepdim=True)
    return (images - low) / ((high - low).clamp_min(floor) + epsilon)


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
    """Rebuild a learned method saved by :func:`fusion.training.train` (weights and the config
    section that built them; no code is loaded)."""
    state = load_checkpoint(path, device)
    if state.get("method") != name:
        raise DataError(f"{path}: a model of '{state.get('method')}', not of '{name}'")
    method = recipe(name)
    section_type = type(method_section(ExperimentConfig(), name))
    model = method.build_model(section_from_dict(section_type, state["config"], method.config_section))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def build_trained(name: str, checkpoint: str | Path, device: str = "auto") -> LuminanceMethod:
    """The registry method of the learned method ``name`` trained into ``checkpoint``."""
    method = recipe(name)
    checkpoint = require_checkpoint(name, method.title, checkpoint)
    where = pick_device(device)
    model = load_trained(name, checkpoint, where)
    return luminance_method(name, lambda ir, vi: method.fuse(model, ir, vi), where, checkpoint)
