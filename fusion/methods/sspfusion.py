"""SSPFusion as a registry method: a trained checkpoint (``fusion/sspfusion/train.py``) applied at
full resolution to each pair's luminance; the visible chroma is put back (fusion.methods.base).

No crop or tiling: the network pads to a multiple of 2^N internally and crops back, so any size
goes through in one piece (a 640x480 pair needs well under 1 GB with the paper-size model). The
fingerprint is the checkpoint's SHA-256, so retraining refuses the old fused files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from configs.runtime import pick_device
from fusion.methods.base import LuminanceMethod
from msrs.layout import DataError


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def build(checkpoint: str | Path, device: str = "auto") -> LuminanceMethod:
    """The method fusing with the model saved at ``checkpoint`` (a ``model.pt``)."""
    from fusion.sspfusion.train import load_model  # torch model only when asked

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise DataError(f"{checkpoint}: SSPFusion model not found (train it first: "
                        "python pipelines/train_fusion.py, or pass --checkpoint)")
    where = pick_device(device)
    model = load_model(checkpoint, where)

    @torch.inference_mode()
    def fuse_y(ir_y: np.ndarray, vi_y: np.ndarray, **_fingerprint) -> np.ndarray:
        to = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None].to(where)  # noqa: E731
        return model(to(ir_y), to(vi_y)).fused.clamp(0, 1)[0, 0].float().cpu().numpy()

    return LuminanceMethod("sspfusion", fuse_y, params={"checkpoint_sha256": _sha256(checkpoint)})
