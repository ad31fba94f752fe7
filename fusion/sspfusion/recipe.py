"""SSPFusion's two-phase training (paper 4.1) as a recipe of the one training loop
(:mod:`fusion.training`), values from the ``fusion`` config section.

Adam (betas 0.9, 0.999), lr 2e-4 with cosine decay, random ``crop_size`` square crops (plus
horizontal flips), batch ``batch_size``.

- Phase 1, ``structure`` (``structure_epochs``): the structure maps and an auto-encoder path learn
  (``losses.total_loss(..., phase="structure")``); the fusion convolutions take no part in that
  loss and are frozen.
- Phase 2, ``fusion`` (``fusion_epochs``): the full eq. 9; everything trains.

DECISION (the paper gives one lr and "cosine decay" without saying over what): each phase gets a
fresh Adam and its own cosine from ``lr`` down to ``lr / 100``, as two separate trainings in the
style of Li et al. (2021), which the paper cites for the two-stage scheme. The ablation "w/o F"
(``use_sfe`` off) runs the same two phases with L_str and L_rec left out (losses.total_loss).
With ``frozen_targets`` the SFE is copied when phase 2 starts and S^{k,gt} comes from that copy.

The network runs under the run's autocast and the losses in float32 (the loop's
``autocast_view``); the structure targets of eq. 2 are thresholds of float32 maps whatever the
autocast (model.structure_target).
"""

from __future__ import annotations

import math

import torch

from fusion.methods.learned import Phase, Recipe
from fusion.sspfusion.losses import total_loss
from fusion.sspfusion.model import SSPFusion, count_parameters


def cosine_per_phase(epochs: int):
    """lr at an epoch of a phase of ``epochs``: cosine from lr to lr / 100 (module docstring)."""

    def schedule(lr: float, epoch: int) -> float:
        low = lr / 100
        return low + 0.5 * (lr - low) * (1 + math.cos(math.pi * epoch / max(epochs, 1)))

    return schedule


def _trained(model: SSPFusion, phase: str) -> list[torch.nn.Parameter]:
    """What a phase trains: everything but the frozen target copy, and in phase 1 also not the
    fusion convolutions."""
    frozen = {id(p) for p in model.target_sfe.parameters()} if model.target_sfe is not None else set()
    if phase == "structure":
        frozen |= {id(p) for p in model.fuse.parameters()}
    return [p for p in model.parameters() if id(p) not in frozen]


def _freeze_targets(model: SSPFusion) -> None:
    if model.target_sfe is not None:
        model.freeze_targets()


def _reconstructions(model, images: torch.Tensor) -> torch.Tensor:
    """Phase 1's images of the probe pairs (infrared then visible): each source decoded alone."""
    output = model(*images.chunk(2), reconstruct=True)
    return torch.cat([output.reconstruction_ir, output.reconstruction_vi])


def phases(config) -> list[Phase]:
    def phase(name: str, epochs: int, **more) -> Phase:
        return Phase(
            name,
            epochs,
            param_groups=lambda model: [
                {"params": _trained(model, name), "lr": config.lr, "betas": tuple(config.betas)}
            ],
            loss=lambda model, ir, vi: total_loss(
                model(ir, vi, reconstruct=name == "structure"), ir, vi, config, phase=name
            ),
            lr_schedule=cosine_per_phase(epochs),
            batch_size=config.batch_size,
            crop_size=config.crop_size,
            **more,
        )

    return [
        phase("structure", config.structure_epochs, reconstruct=_reconstructions),
        phase("fusion", config.fusion_epochs, begin=_freeze_targets),
    ]


RECIPE = Recipe(
    "sspfusion",
    "SSPFusion",
    12_021_649,
    SSPFusion.from_config,
    phases,
    section="fusion",
    fuse=lambda model, ir, vi: model(ir, vi).fused,
    count_parameters=count_parameters,
)
