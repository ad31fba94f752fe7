"""CMTFusion (Park, Vien and Lee, IEEE TMM 2024): cross-modal transformers for infrared and
visible image fusion.

model.py holds the network, losses.py the losses, recipe.py the recipe; here: its config
section and its registration.
"""

from dataclasses import dataclass
from typing import ClassVar

from configs.schema import CMT_PERCEPTUAL, TRAINING_MINIMUMS, ConfigError
from fusion.methods import register_method


@dataclass
class CMTFusionConfig:
    """CMTFusion (Park et al., IEEE TMM 2024): width, loss weights, recipe (its code)."""

    MINIMUMS: ClassVar = TRAINING_MINIMUMS

    channels: int = 32  # every map (464,521 parameters used; Table 5 counts 623,989)
    spatial_weight: float = 0.8
    frequency_weight: float = 0.05
    perceptual: str = "efficientnet"  # efficientnet (packaged ImageNet weights) | none (VGG-19 offline: no)
    perceptual_weight: float = 0.02
    epochs: int = 20
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 1e-8
    crop_size: int = 256  # a multiple of 4 (outputs at 1/2 and 1/4), at least 64

    def check(self) -> None:
        if self.perceptual not in CMT_PERCEPTUAL:
            raise ConfigError(f"cmtfusion.perceptual: must be one of {', '.join(CMT_PERCEPTUAL)}")
        if self.crop_size % 4 or self.crop_size < 64:
            raise ConfigError(
                "cmtfusion.crop_size: a multiple of 4 (its outputs at 1/2 and 1/4 size), at least 64 "
                "(its coarsest attention max-pools 7x7)"
            )


register_method("cmtfusion", display="CMTFusion", config=CMTFusionConfig, recipe=f"{__name__}.recipe:RECIPE")
