"""ITFuse's training recipe (the authors' training script; values in the ``itfuse`` config
section): one phase, the whole network with the loss of :mod:`fusion.methods.itfuse.losses`,
Adam (betas 0.9, 0.999, eps 1e-8, no weight decay: the script's ``weight_decay`` argument never
reaches the optimiser), lr 3e-4 kept, batch 64, 20 epochs.

DECISION (ours): the script's data loader is not published; crops are 120 x 120 (the model's
``img_size`` default in the authors' code) of the experiment's training pairs (SSPFusion's), so
every row of Table 2 saw the same data.
"""

from __future__ import annotations

from fusion.methods.itfuse.losses import itfuse_loss
from fusion.methods.itfuse.model import ITFuse, registered_but_unused
from fusion.methods.learned import Phase, Recipe, one_phase


def phases(config) -> list[Phase]:
    return one_phase("fusion", config, itfuse_loss)


RECIPE = Recipe(
    "itfuse",
    "ITFuse",
    82_487,
    ITFuse.from_config,
    phases,
    unused_parameters=lambda section: registered_but_unused(section.channels),
)
