"""CMTFusion (Park, Vien and Lee, IEEE TMM 2024): cross-modal transformers for infrared and
visible image fusion.

model.py holds the network, losses.py the losses, recipe.py the recipe.
"""

from fusion.methods.learned import build_trained


def build(checkpoint, device: str = "auto"):
    """The method fusing with the CMTFusion model trained into ``checkpoint`` (a model.pt)."""
    return build_trained("cmtfusion", checkpoint, device)
