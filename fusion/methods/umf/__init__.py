"""UMF (Wang et al., IJCAI 2022): the fusion network of its registration-then-fusion pipeline.

model.py holds the network, losses.py the loss and its saliency weights, recipe.py the recipe.
"""

from fusion.methods.learned import build_trained


def build(checkpoint, device: str = "auto"):
    """The method fusing with the UMF model trained into ``checkpoint`` (a model.pt)."""
    return build_trained("umf", checkpoint, device)
