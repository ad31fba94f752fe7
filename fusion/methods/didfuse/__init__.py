"""DIDFuse (Zhao et al., IJCAI 2020): deep image decomposition into background and detail maps.

model.py holds the auto-encoder, losses.py the training loss, recipe.py the training recipe.
"""

from fusion.methods.learned import build_trained


def build(checkpoint, device: str = "auto"):
    """The method fusing with the DIDFuse model trained into ``checkpoint`` (a model.pt)."""
    return build_trained("didfuse", checkpoint, device)
