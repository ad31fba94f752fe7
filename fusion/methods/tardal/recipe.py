"""TarDAL's training recipe (the authors' scripts/train_f.py with config/official/train/tardal-dt.yaml;
values in the ``tardal`` config section): two phases of the whole model (generator and both
discriminators) with the losses of :mod:`fusion.methods.tardal.losses`, lr 1e-3 kept (their
linear schedule from 1e-3 to 1e-3), Adam (beta1 0.937, their momentum), batches of 32 crops of
224 x 224: ``warm-up`` (the discriminators learn, the generator has its source term only), then
``adversarial``, 1,000 epochs in all.

DECISION (ours): it trains on the experiment's training pairs (SSPFusion's) so every row of Table 2
saw the same data, as random crops (theirs: whole RoadScene images resized to 224 x 224); Adam
without weight decay (theirs: AdamW, decay 5e-4 on convolution weights, a change of 5e-7 a step
at lr 1e-3); the optimiser starts afresh at the second phase. The detection-driven trainings
(TarDAL-TT, -CT) need a detector and boxes and are not built.
"""

from __future__ import annotations

from fusion.methods.imagenet import weights_digest
from fusion.methods.learned import Phase, Recipe, count_parameters, fixed
from fusion.methods.tardal.losses import tardal_loss
from fusion.methods.tardal.model import TarDAL

BETAS = (0.937, 0.999)


def phases(config) -> list[Phase]:
    def phase(name: str, epochs: int, adversarial: bool) -> Phase:
        return Phase(
            name,
            epochs,
            param_groups=lambda model: [
                {"params": list(model.parameters()), "lr": config.lr, "betas": BETAS}
            ],
            loss=lambda model, ir, vi: tardal_loss(model, ir, vi, config, adversarial),
            lr_schedule=fixed,
            batch_size=config.batch_size,
            crop_size=config.crop_size,
        )

    return [
        phase("warm-up", config.warmup_epochs, adversarial=False),
        phase("adversarial", config.epochs - config.warmup_epochs, adversarial=True),
    ]


RECIPE = Recipe(
    "tardal",
    "TarDAL",
    296_577,
    TarDAL.from_config,
    phases,
    count_parameters=lambda model: count_parameters(model.generator),
    pretrained_weights=lambda section: weights_digest(),
)
