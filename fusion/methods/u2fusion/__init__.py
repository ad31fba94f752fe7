"""U2Fusion (Xu et al., IEEE TPAMI 2022): a unified unsupervised fusion network whose loss weighs
each source by the information a pretrained network finds in it.

model.py holds the network, losses.py the loss and its information measure, recipe.py the
recipe; here: its config section and its registration.
"""

from dataclasses import dataclass
from typing import ClassVar

from configs.schema import TRAINING_MINIMUMS
from fusion.methods import register_method


@dataclass
class U2FusionConfig:
    """U2Fusion (Xu et al., TPAMI 2022): width, loss weights, recipe (its code)."""

    MINIMUMS: ClassVar = TRAINING_MINIMUMS

    channels: int = 44  # feature maps per dense layer (659,217 parameters)
    information_scale: float = 1.0  # c of its weights, for EfficientNet-Lite0 features (VGG-16's: 3200)
    mse_weight: float = 20.0  # alpha: loss = SSIM term + alpha MSE term
    epochs: int = 3
    batch_size: int = 18
    lr: float = 1e-4
    crop_size: int = 64


register_method("u2fusion", display="U2Fusion", config=U2FusionConfig, recipe=f"{__name__}.recipe:RECIPE")
