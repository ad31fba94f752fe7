"""TarDAL (Liu et al., CVPR 2022): target-aware dual adversarial learning for infrared and visible
fusion, its fusion-only training ("direct training", TarDAL-DT).

model.py holds the generator and its two discriminators, losses.py the losses, recipe.py the
recipe; here: its config section and its registration.
"""

from dataclasses import dataclass
from typing import ClassVar

from configs.schema import TRAINING_MINIMUMS, ConfigError
from fusion.methods import register_method


@dataclass
class TarDALConfig:
    """TarDAL (Liu et al., CVPR 2022): width, loss weights, recipe (its code, tardal-dt.yaml)."""

    MINIMUMS: ClassVar = TRAINING_MINIMUMS

    channels: int = 32  # the generator's base width (296,577 parameters)
    dense_layers: int = 3
    source_weight: float = 0.8  # loss: 0.8 source term + 0.2 adversarial term
    adversarial_weight: float = 0.2
    target_weight: float = 0.5  # adversarial term: 0.5 target + 0.5 detail discriminator
    detail_weight: float = 0.5
    warmup_epochs: int = 10  # epochs the discriminators train before the generator hears them
    epochs: int = 1000  # in all, the warm-up's included
    batch_size: int = 32
    lr: float = 1e-3
    crop_size: int = 224  # the discriminators' last layer is sized for it: a multiple of 8

    def check(self) -> None:
        if self.crop_size % 8:
            raise ConfigError("tardal.crop_size: a multiple of 8 (its discriminators stride by 8)")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError("tardal.warmup_epochs: between 0 and tardal.epochs")


register_method("tardal", display="TarDAL", config=TarDALConfig, recipe=f"{__name__}.recipe:RECIPE")
