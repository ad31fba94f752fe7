"""AUIF's training recipe (its paper's training details): one phase, the auto-encoder on
single images (infrared and visible crops alike), Adam with lr 1e-2 for the base encoder and the
decoder and a tenth of it for the detail encoder, divided by 10 at each milestone epoch (80
epochs, lr divided from the 42nd epoch on, batches of 32 images in the paper's recipe; values in
the ``auif`` config section). Crops are the authors' RandomResizedCrop to 128 x 128 of each
image on its own (``augment: resized_crop``; ``crop`` takes native-resolution square crops with
flips instead, as the other methods).

DECISION: ``batch_size`` counts crop *pairs*, so one step sees 2 x batch_size images; the paper's
32 images are batch_size 16. The paper trains on 180 FLIR pairs; here the experiment's training
pairs (SSPFusion's).
"""

from __future__ import annotations

from fusion.methods.auif.losses import auif_loss
from fusion.methods.auif.model import AUIF
from fusion.methods.learned import Phase, Recipe, step_decay


def phases(config) -> list[Phase]:
    def groups(model: AUIF) -> list[dict]:
        return [
            {"params": [*model.base.parameters(), *model.decoder.parameters()], "lr": config.lr},
            {"params": list(model.detail.parameters()), "lr": config.lr * config.detail_lr_factor},
        ]

    return [
        Phase(
            "autoencoder",
            config.epochs,
            param_groups=groups,
            loss=lambda model, ir, vi: auif_loss(model, ir, vi, config),
            lr_schedule=step_decay(config.lr_milestones, config.lr_gamma),
            batch_size=config.batch_size,
            crop_size=config.crop_size,
            augment=config.augment,
        )
    ]


RECIPE = Recipe("auif", "AUIF", 11_631, AUIF.from_config, phases)
