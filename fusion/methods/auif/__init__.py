"""AUIF (Zhao et al., IEEE TCSVT 2021): fusion by unrolled base/detail optimisation.

model.py holds the unrolled network, losses.py the training loss, recipe.py the training recipe.
"""

from fusion.methods.learned import build_trained


def build(checkpoint, device: str = "auto"):
    """The method fusing with the AUIF model trained into ``checkpoint`` (a model.pt)."""
    return build_trained("auif", checkpoint, device)
