"""SSPFusion (Yang et al.): structure-preserving infrared/visible fusion of luminance images.

model.py holds the network and the parameter-free helpers of the paper's equations; losses.py the
training losses of section 3.3; recipe.py the two training phases of section 4.1, which the
one training loop of every learned method runs (fusion/training.py).
"""

from fusion.sspfusion.losses import (
    charbonnier,
    fusion_loss,
    reconstruction_loss,
    structure_loss,
    total_loss,
)
from fusion.sspfusion.model import (
    FusionOutput,
    SSPFusion,
    count_parameters,
    dice_distance,
    sobel_gradient,
    split_unique_structure,
    structure_target,
    unique_structure,
)

__all__ = [
    "FusionOutput",
    "SSPFusion",
    "charbonnier",
    "count_parameters",
    "dice_distance",
    "fusion_loss",
    "reconstruction_loss",
    "sobel_gradient",
    "split_unique_structure",
    "structure_loss",
    "structure_target",
    "total_loss",
    "unique_structure",
]
