"""CMTFusion's training recipe (the authors' training script; values in the ``cmtfusion`` config
section): one phase, the whole network with the loss of :mod:`fusion.methods.cmtfusion.losses`,
Adam (betas 0.9, 0.999, eps 1e-8, weight decay 1e-8), lr 1e-4 kept, batch 4 of 256 x 256 crops
(the same crop of both sources), 20 epochs (the paper: over 20,000 KAIST pairs).

DECISION (ours): it trains on the experiment's training pairs (SSPFusion's), so every row of
Table 2 saw the same data; crops get the same horizontal flips as every other method's.
"""

from __future__ import annotations

from fusion.methods.cmtfusion.losses import cmtfusion_loss
from fusion.methods.cmtfusion.model import CMTFusion, registered_but_unused
from fusion.methods.learned import Phase, Recipe, one_phase


def phases(config) -> list[Phase]:
    return one_phase("fusion", config, cmtfusion_loss, weight_decay=config.weight_decay)


def pretrained_weights(config) -> str | None:
    """The digest of the perceptual network's packaged weights (None without the term)."""
    if config.perceptual == "none":
        return None
    from fusion.methods.imagenet import weights_digest

    return weights_digest()


RECIPE = Recipe(
    "cmtfusion",
    "CMTFusion",
    623_989,
    CMTFusion.from_config,
    phases,
    unused_parameters=lambda section: registered_but_unused(section.channels),
    pretrained_weights=pretrained_weights,
)
