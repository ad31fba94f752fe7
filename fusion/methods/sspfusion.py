"""SSPFusion as a registry method: a trained checkpoint (``fusion/sspfusion/train.py``) applied at
full resolution to each pair's luminance; the visible chroma is put back (fusion.methods.base).

No crop or tiling: the network pads to a multiple of 2^N internally and crops back, so any size
goes through in one piece (a 640x480 pair needs well under 1 GB with the paper-size model). The
fingerprint is the checkpoint's SHA-256, so retraining refuses the old fused files.
"""

from __future__ import annotations

from fusion.methods.base import LuminanceMethod
from fusion.methods.learned import luminance_method, require_checkpoint
from runtime.device import pick_device


def build(checkpoint, device: str = "auto") -> LuminanceMethod:
    """The method fusing with the model saved at ``checkpoint`` (a ``model.pt``)."""
    from fusion.sspfusion.train import load_model  # torch model only when asked

    checkpoint = require_checkpoint("sspfusion", "SSPFusion", checkpoint)
    where = pick_device(device)
    model = load_model(checkpoint, where)
    return luminance_method("sspfusion", lambda ir, vi: model(ir, vi).fused, where, checkpoint)
