"""DeFusion (Liang et al., ECCV 2022): "Fusion from decomposition", a network trained without
fusion data to split two degraded views of one image into their common and unique parts.

model.py holds the network, losses.py its self-supervised loss and views, recipe.py the
recipe; here: its config section and its registration.
"""

from dataclasses import dataclass, field
from typing import ClassVar

from configs.schema import TRAINING_MINIMUMS, ConfigError
from fusion.methods import register_method


@dataclass
class DeFusionConfig:
    """DeFusion (Liang et al., ECCV 2022): its schedule and recipe (its code, SelfTrained_SDataset.yaml)."""

    MINIMUMS: ClassVar = TRAINING_MINIMUMS

    schedule_scale: float = 1.0  # the loss's step thresholds (3,000 ... 40,000) times this
    epochs: int = 50
    batch_size: int = 2  # pairs: 4 single frames a step, their batch of 4 images
    lr: float = 1e-3
    lr_milestones: list[int] = field(default_factory=lambda: [10, 20, 30, 40])  # lr x 0.5 at each
    crop_size: int = 256

    def check(self) -> None:
        if self.schedule_scale <= 0:
            raise ConfigError("defusion.schedule_scale: must be positive")
        if self.crop_size < 32:
            raise ConfigError("defusion.crop_size: at least 32 (its encoder halves a crop four times)")


register_method("defusion", display="DeFusion", config=DeFusionConfig, recipe=f"{__name__}.recipe:RECIPE")
