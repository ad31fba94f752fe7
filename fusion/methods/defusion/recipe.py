"""DeFusion's training recipe (the authors' selftrain.py with option/train/SelfTrained_SDataset.yaml;
values in the ``defusion`` config section): one phase, the whole network with the loss of
:mod:`fusion.methods.defusion.losses`, Adam (betas 0.9, 0.999), lr 1e-3 halved at epochs 10, 20,
30 and 40, batches of 4 frames of 256 x 256, 50 epochs. The optimiser step count the loss's
schedule reads is kept in the model (its ``steps`` buffer), so a resumed run goes on from it.

DECISION (ours): the frames are the experiment's training frames (losses.py says why and how).
The fused head trains only from step 17,000 x ``schedule_scale``: a config must reach it with room
to spare (configs/*.yaml say how many steps theirs make); until then the collapse guard watches
the common image, and the history's ``fused`` term stays 0.
"""

from __future__ import annotations

from fusion.methods.defusion.losses import defusion_loss
from fusion.methods.defusion.model import UNUSED_PARAMETERS, DeFusion
from fusion.methods.learned import Phase, Recipe, one_phase, step_decay


def phases(config) -> list[Phase]:
    return one_phase(
        "decomposition", config, defusion_loss, lr_schedule=step_decay(config.lr_milestones, 0.5)
    )


RECIPE = Recipe(
    "defusion",
    "DeFusion",
    7_874_473,
    DeFusion.from_config,
    phases,
    unused_parameters=lambda section: UNUSED_PARAMETERS,
)
