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

import dataclasses

import torch

from fusion.methods import MethodError
from fusion.methods.defusion.losses import defusion_loss, schedule
from fusion.methods.defusion.model import UNUSED_PARAMETERS, DeFusion
from fusion.methods.learned import Phase, Recipe, one_phase, step_decay


def trained_fuse(model, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """The fused luminance of a model whose fused head has trained; a model whose training ended
    before its loss's fused term entered (a schedule too long for its steps) is refused, so its
    untrained, flat fused image never reaches a Table 2 row (and training ends without a model).
    A network of 0 steps is the fresh one the training loop checks before its first step."""
    if 0 < float(model.steps) < model.fused_start:
        raise MethodError(
            f"DeFusion trained {int(model.steps)} steps but its loss trains the fused image only from step "
            f"{model.fused_start:.0f} (17,000 x defusion.schedule_scale): train more epochs or lower "
            "defusion.schedule_scale"
        )
    return model.fuse(ir, vi)


def watched_images(model, images: torch.Tensor, config) -> torch.Tensor:
    """What the collapse guard checks after an epoch: the fused images of the probe pairs once
    the fused term has entered the loss; before that (the fused head has not trained yet) the
    common image of each probe image given as both views."""
    if float(schedule(model.steps, config.schedule_scale)[1]) > 0:  # once an epoch, not a step
        ir, vi = images.chunk(2)
        return model.fuse(ir, vi)
    grey = images.expand(-1, 3, -1, -1)
    return model(grey, grey)[0].mean(1, keepdim=True)


def phases(config) -> list[Phase]:
    decay = step_decay(config.lr_milestones, 0.5)
    (phase,) = one_phase("decomposition", config, defusion_loss, lr_schedule=decay)
    return [
        dataclasses.replace(phase, reconstruct=lambda model, images: watched_images(model, images, config))
    ]


RECIPE = Recipe(
    "defusion",
    "DeFusion",
    7_874_473,
    DeFusion.from_config,
    phases,
    fuse=trained_fuse,
    unused_parameters=lambda section: UNUSED_PARAMETERS,
)
