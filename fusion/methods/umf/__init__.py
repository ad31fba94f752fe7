"""UMF (Wang et al., IJCAI 2022): the fusion network of its registration-then-fusion pipeline.

model.py holds the network, losses.py the loss and its saliency weights, recipe.py the recipe;
here: its config section and its registration.
"""

from dataclasses import dataclass
from typing import ClassVar

from configs.schema import TRAINING_MINIMUMS
from fusion.methods import register_method


@dataclass
class UMFConfig:
    """UMF's fusion network (Wang et al., IJCAI 2022): width, loss weights, recipe (its code)."""

    MINIMUMS: ClassVar = TRAINING_MINIMUMS

    channels: int = 64  # feature maps per layer (629,253 parameters)
    dense_layers: int = 3  # per residual dense block
    alpha: float = 1.0  # weight of 1 - MS-SSIM
    beta: float = 20.0  # weight of the l1 intensity term
    theta: float = 5.0  # weight of the joint Laplacian term
    epochs: int = 200
    batch_size: int = 8
    lr: float = 1e-3
    crop_size: int = 256


register_method("umf", display="UMF", config=UMFConfig, recipe=f"{__name__}.recipe:RECIPE")
