"""DIDFuse (Zhao et al., IJCAI 2020): deep image decomposition into background and detail maps.

model.py holds the auto-encoder, losses.py the training loss, recipe.py the training recipe;
here: its config section and its registration.
"""

from dataclasses import dataclass, field
from typing import ClassVar

from configs.schema import FUSION_RULES, TRAINING_MINIMUMS, ConfigError
from fusion.methods import register_method


@dataclass
class DIDFuseConfig:
    """DIDFuse (Zhao et al., IJCAI 2020): auto-encoder width, loss weights, recipe (its 4.1)."""

    MINIMUMS: ClassVar = TRAINING_MINIMUMS

    channels: int = 64  # feature maps per layer
    alpha1: float = 0.5  # weight of the detail-dissimilarity term (authors' code; paper 0.05)
    alpha2: float = 2.0  # weight of the infrared reconstruction f(I, Î)
    alpha3: float = 2.0  # weight of the visible reconstruction f(V, V̂)
    alpha4: float = 10.0  # weight of the visible gradient term
    ssim_weight: float = 5.0  # lambda inside f(X, X̂)
    epochs: int = 120
    batch_size: int = 24
    lr: float = 1e-3
    lr_milestones: list[int] = field(default_factory=lambda: [40, 80])  # lr x lr_gamma at each
    lr_gamma: float = 0.1
    crop_size: int = 128
    fusion_rule: str = "sum"  # sum | average | l1_norm

    def check(self) -> None:
        if self.fusion_rule not in FUSION_RULES:
            raise ConfigError(f"didfuse.fusion_rule: must be one of {', '.join(FUSION_RULES)}")


register_method("didfuse", display="DIDFuse", config=DIDFuseConfig, recipe=f"{__name__}.recipe:RECIPE")
