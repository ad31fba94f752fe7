"""SSPFusion in the registry: a trained checkpoint (``fusion/sspfusion/recipe.py``, trained by
``fusion/training.py``) applied at full resolution to each pair's luminance; the visible chroma
is put back (fusion.methods.base).

No crop or tiling: the network pads to a multiple of 2^N internally and crops back, so any size
goes through in one piece (a 640x480 pair needs well under 1 GB with the paper-size model). The
fingerprint is the checkpoint's SHA-256, so retraining refuses the old fused files.
"""

from __future__ import annotations

from configs.schema import FusionConfig
from fusion.methods import register_method

register_method(
    "sspfusion",
    display="SSPFusion",
    config=FusionConfig,
    section="fusion",
    recipe="fusion.sspfusion.recipe:RECIPE",
)
