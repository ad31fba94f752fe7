"""U2Fusion's training recipe (the authors' main.py and train_task.py; values in the ``u2fusion``
config section): one phase, the whole network with the loss of :mod:`fusion.methods.u2fusion.losses`,
batches of 18 crops of 64 x 64, lr 1e-4 kept, 3 epochs (their infrared-visible task).

DECISION (ours), three departures from the authors' code:

- one task: U2Fusion trains in turn on infrared-visible, multi-exposure and multi-focus patches,
  keeping earlier tasks by elastic weight consolidation; its λ is 0 in their main.py, so each
  task just goes on training the network. Here only the infrared-visible task, on the
  experiment's training pairs (SSPFusion's), so every row of Table 2 saw the same data;
- Adam (betas 0.9, 0.999), the optimiser of every learned method here, where theirs is RMSProp
  (decay 0.6, momentum 0.15);
- no clipping of every weight to [-50, 50] after each step (no weight comes near it at these
  learning rates).
"""

from __future__ import annotations

from fusion.methods.imagenet import weights_digest
from fusion.methods.learned import Phase, Recipe, one_phase
from fusion.methods.u2fusion.losses import u2fusion_loss
from fusion.methods.u2fusion.model import U2Fusion


def phases(config) -> list[Phase]:
    return one_phase("fusion", config, u2fusion_loss)


RECIPE = Recipe(
    "u2fusion",
    "U2Fusion",
    659_217,
    U2Fusion.from_config,
    phases,
    pretrained_weights=lambda section: weights_digest(),
)
