"""ITFuse (Tang, He and Liu, Pattern Recognition 2024): an interactive transformer for infrared
and visible image fusion.

model.py holds the network, losses.py the loss, recipe.py the recipe; here: its config
section and its registration.
"""

from dataclasses import dataclass, field
from typing import ClassVar

from configs.schema import TRAINING_MINIMUMS, ConfigError
from fusion.methods import register_method


@dataclass
class ITFuseConfig:
    """ITFuse (Tang et al., Pattern Recognition 2024): width, loss weights, recipe (its code)."""

    MINIMUMS: ClassVar = TRAINING_MINIMUMS

    channels: int = 16  # every map (18,359 parameters used; Table 5 counts 82,487)
    blocks: int = 3  # per-token transformer blocks
    heads: int = 8
    loss_weights: list[float] = field(
        default_factory=lambda: [1.0, 1.0, 4.0, 4.0]
    )  # C_I, C_V, SSIM_I, SSIM_V
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-4
    crop_size: int = 120

    def check(self) -> None:
        if len(self.loss_weights) != 4:
            raise ConfigError("itfuse.loss_weights: four weights (Charbonnier I, V; SSIM I, V)")
        if self.channels % 8:
            raise ConfigError("itfuse.channels: a multiple of 8 (its attention embeds to channels / 8)")


register_method("itfuse", display="ITFuse", config=ITFuseConfig, recipe=f"{__name__}.recipe:RECIPE")
