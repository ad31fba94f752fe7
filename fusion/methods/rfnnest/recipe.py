"""RFN-Nest's two-stage training (the paper's training details), values in the ``rfnnest`` config section.

1. ``autoencoder``: the nest encoder and decoder learn to reconstruct single images (infrared and
   visible crops alike) with L_auto; the RFN blocks are frozen (they take no part).
2. ``fusion``: encoder and decoder are frozen; the four RFN blocks learn with L_RFN, the gradient
   passing through the frozen decoder.

Adam, lr 1e-4, batch 4 of 256x256 crops, in both stages (paper: 2 epochs over 80,000 MS-COCO
images for stage 1 and 80,000 KAIST pairs for stage 2).

DECISION: both stages train on the experiment's training pairs (SSPFusion's data), not on
MS-COCO and KAIST; paper.yaml matches the paper's number of steps instead of its epochs.
"""

from __future__ import annotations

from fusion.methods.learned import Phase, Recipe, fixed
from fusion.methods.rfnnest.losses import autoencoder_loss, rfn_loss
from fusion.methods.rfnnest.model import RFNNest


def phases(config) -> list[Phase]:
    return [
        Phase(
            "autoencoder",
            config.autoencoder_epochs,
            param_groups=lambda model: [
                {"params": [*model.encoder.parameters(), *model.decoder.parameters()], "lr": config.lr}
            ],
            loss=lambda model, ir, vi: autoencoder_loss(model, ir, vi, config),
            lr_schedule=fixed,  # the paper keeps lr fixed
            batch_size=config.batch_size,
            crop_size=config.crop_size,
            reconstruct=lambda model, images: model(images),  # the RFNs are not trained yet
        ),
        Phase(
            "fusion",
            config.fusion_epochs,
            param_groups=lambda model: [{"params": list(model.rfn.parameters()), "lr": config.lr}],
            loss=lambda model, ir, vi: rfn_loss(model, ir, vi, config),
            lr_schedule=fixed,  # the paper keeps lr fixed
            batch_size=config.batch_size,
            crop_size=config.crop_size,
        ),
    ]


RECIPE = Recipe("rfnnest", "RFN-Nest", 7_524_249, RFNNest.from_config, phases)
