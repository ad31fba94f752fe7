"""RFN-Nest (Li, Wu and Kittler, Information Fusion 2021): nest auto-encoder + residual fusion.

model.py holds the networks, losses.py the two stages' losses, recipe.py the two-stage recipe; here:
its config section and its registration.
"""

from dataclasses import dataclass, field
from typing import ClassVar

from configs.schema import ConfigError
from fusion.methods import register_method


@dataclass
class RFNNestConfig:
    """RFN-Nest (Li et al., Information Fusion 2021): widths, loss weights, two-stage recipe."""

    MINIMUMS: ClassVar = (("autoencoder_epochs", 0), ("fusion_epochs", 1), ("batch_size", 1), ("lr", 0.0))

    widths: list[int] = field(default_factory=lambda: [64, 112, 160, 208])  # four scales
    stem: int = 16
    intensity_scale: float = 255.0  # the networks see [0, 255] intensities
    ssim_weight: float = 100.0  # lambda of the auto-encoder loss
    detail_weight: float = 700.0  # alpha of L_RFN
    ir_weight: float = 6.0
    vi_weight: float = 3.0
    feature_weights: list[float] = field(default_factory=lambda: [1.0, 10.0, 100.0, 1000.0])
    autoencoder_epochs: int = 74
    fusion_epochs: int = 148
    batch_size: int = 4
    lr: float = 1e-4
    crop_size: int = 256  # a multiple of 8

    def check(self) -> None:
        if self.crop_size % 8 or len(self.widths) != 4:
            raise ConfigError("rfnnest: crop_size must be a multiple of 8 and widths four values")
        if len(self.feature_weights) != 4:
            raise ConfigError("rfnnest.feature_weights: one weight per scale (four)")


register_method("rfnnest", display="RFN-Nest", config=RFNNestConfig, recipe=f"{__name__}.recipe:RECIPE")
