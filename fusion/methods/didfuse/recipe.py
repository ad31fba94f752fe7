"""DIDFuse's training recipe (the paper's training details): one phase, the auto-encoder with the loss of
:mod:`fusion.methods.didfuse.losses`, Adam, lr divided by 10 at each milestone epoch
(120 epochs, milestones 40 and 80, batch 24 of 128x128 crops in the paper's recipe;
values in the ``didfuse`` config section).

DECISION: the paper trains on 180 FLIR pairs; here it trains on the experiment's training
pairs (the same ones SSPFusion learns from), so every row of Table 2 saw the same data.
"""

from __future__ import annotations

from fusion.methods.didfuse.losses import didfuse_loss
from fusion.methods.didfuse.model import DIDFuse
from fusion.methods.learned import Phase, Recipe, one_phase, step_decay


def phases(config) -> list[Phase]:
    return one_phase(
        "autoencoder", config, didfuse_loss, lr_schedule=step_decay(config.lr_milestones, config.lr_gamma)
    )


RECIPE = Recipe("didfuse", "DIDFuse", 260_935, DIDFuse.from_config, phases)
