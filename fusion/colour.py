"""RGB <-> YCbCr (the paper's "YUV"): fusion works on luminance, colour comes back from the
visible image.

Full-range ITU-R BT.601 (JPEG) constants, the convention of SeAFusion/CDDFuse and of
``kornia.color.rgb_to_ycbcr``: Y = 0.299 R + 0.587 G + 0.114 B, Cb and Cr centred on 0.5 for
images in [0, 1]. The paper says YUV; YUV and YCbCr differ only in the chroma scaling, which
cancels because the inverse uses the same constants.

numpy functions take and return uint8 or float arrays (H, W, 3) with values in [0, 1] for float;
the torch functions work on (B, 3, H, W) tensors in [0, 1] through kornia.
"""

from __future__ import annotations

import kornia
import numpy as np
import torch

_FORWARD = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float64
)
_INVERSE = np.linalg.inv(_FORWARD)


def _as_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB (uint8, or float in [0, 1]) -> float YCbCr in [0, 1]."""
    ycbcr = _as_float(rgb) @ _FORWARD.T
    ycbcr[..., 1:] += 0.5
    return ycbcr


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Float YCbCr in [0, 1] -> float RGB clipped to [0, 1]."""
    shifted = ycbcr.astype(np.float64).copy()
    shifted[..., 1:] -= 0.5
    return np.clip(shifted @ _INVERSE.T, 0.0, 1.0)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Y of an RGB image as uint8 (H, W) (BT.601, rounded): the grey image metrics are taken on."""
    return to_uint8(rgb_to_ycbcr(rgb)[..., 0])


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8 with rounding."""
    return np.clip(np.rint(np.asarray(image, np.float64) * 255.0), 0, 255).astype(np.uint8)


def recolour(fused_y: np.ndarray, visible_rgb: np.ndarray) -> np.ndarray:
    """A fused luminance (uint8 or float in [0, 1], (H, W)) with the visible image's chroma
    -> uint8 RGB (H, W, 3)."""
    ycbcr = rgb_to_ycbcr(visible_rgb)
    ycbcr[..., 0] = _as_float(fused_y)
    return to_uint8(ycbcr_to_rgb(ycbcr))


def rgb_to_ycbcr_torch(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> YCbCr in [0, 1] (kornia; its rounded constants agree with
    the numpy ones to 3e-4)."""
    return kornia.color.rgb_to_ycbcr(rgb)


def ycbcr_to_rgb_torch(ycbcr: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) YCbCr in [0, 1] -> RGB clamped to [0, 1]."""
    return kornia.color.ycbcr_to_rgb(ycbcr).clamp(0.0, 1.0)
