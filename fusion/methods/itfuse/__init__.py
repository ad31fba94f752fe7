"""ITFuse (Tang, He and Liu, Pattern Recognition 2024): an interactive transformer for infrared
and visible image fusion.

model.py holds the network, losses.py the loss, recipe.py the recipe.
"""

from fusion.methods.learned import build_trained


def build(checkpoint, device: str = "auto"):
    """The method fusing with the ITFuse model trained into ``checkpoint`` (a model.pt)."""
    return build_trained("itfuse", checkpoint, device)
