"""UMF's training recipe (the authors' fusion training script; values in the ``umf`` config
section): one phase, the whole fusion network with the loss of :mod:`fusion.methods.umf.losses`,
Adam, lr 1e-3 kept constant (their step decay every 1,000 epochs never comes within 200),
batch 8, 200 epochs.

DECISION (ours): the authors train on whole 256 x 256 images (the RandomResizedCrop their script
builds is never applied); here random 256 px square crops of the experiment's training pairs
(SSPFusion's), so every row of Table 2 saw the same data.
"""

from __future__ import annotations

from fusion.methods.learned import Phase, Recipe, one_phase
from fusion.methods.umf.losses import umf_loss
from fusion.methods.umf.model import UMF


def phases(config) -> list[Phase]:
    return one_phase("fusion", config, umf_loss)


RECIPE = Recipe("umf", "UMF", 629_253, UMF.from_config, phases)
