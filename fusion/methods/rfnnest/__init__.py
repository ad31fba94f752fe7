"""RFN-Nest (Li, Wu and Kittler, Information Fusion 2021): nest auto-encoder + residual fusion.

model.py holds the networks, losses.py the two stages' losses, recipe.py the two-stage recipe.
"""

from fusion.methods.learned import build_trained


def build(checkpoint, device: str = "auto"):
    """The method fusing with the RFN-Nest model trained into ``checkpoint`` (a model.pt)."""
    return build_trained("rfnnest", checkpoint, device)
