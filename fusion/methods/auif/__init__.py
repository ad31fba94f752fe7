"""AUIF (Zhao et al., IEEE TCSVT 2021): fusion by unrolled base/detail optimisation.

model.py holds the unrolled network, losses.py the training loss, recipe.py the training recipe;
here: its config section and its registration.
"""

from dataclasses import dataclass, field
from typing import ClassVar

from configs.schema import AUGMENTS, FUSION_RULES, TRAINING_MINIMUMS, ConfigError
from fusion.methods import register_method


@dataclass
class AUIFConfig:
    """AUIF (Zhao et al., IEEE TCSVT 2021): unrolled steps, loss weight, recipe (its 4.1)."""

    MINIMUMS: ClassVar = TRAINING_MINIMUMS

    layers: int = 10  # unrolled steps per encoder
    kernels: int = 64  # 3x3 filters per step
    blur_size: int = 11  # box blur that starts the base encoder
    laplacian_size: int = 19  # Laplacian that starts the detail encoder
    ssim_weight: float = 5.0
    ssim_window: int = 3
    epochs: int = 80
    batch_size: int = 16  # crop pairs: 32 images per step
    lr: float = 1e-2
    detail_lr_factor: float = 0.1  # the detail encoder learns at lr x this
    lr_milestones: list[int] = field(default_factory=lambda: [41])  # the authors' MultiStepLR
    lr_gamma: float = 0.1
    crop_size: int = 128
    augment: str = "resized_crop"  # resized_crop (the authors' RandomResizedCrop) | crop
    fusion_rule: str = "sum"  # sum | average | l1_norm

    def check(self) -> None:
        if self.fusion_rule not in FUSION_RULES:
            raise ConfigError(f"auif.fusion_rule: must be one of {', '.join(FUSION_RULES)}")
        if self.augment not in AUGMENTS:
            raise ConfigError(f"auif.augment: must be one of {', '.join(AUGMENTS)}")


register_method("auif", display="AUIF", config=AUIFConfig, recipe=f"{__name__}.recipe:RECIPE")
