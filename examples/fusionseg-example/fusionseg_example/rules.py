"""``contrast``: each pixel takes more of the source with more local contrast there (the local
standard deviation of the luminance in a ``window`` x ``window`` box)."""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fusion.methods import register_method
from fusion.methods.base import LuminanceMethod


@dataclass
class ContrastConfig:
    """The ``contrast:`` section of a benchmark config."""

    window: int = 7  # box side of the local standard deviation, pixels
    sharpness: float = 2.0  # weight = contrast ** sharpness (1: proportional)


def local_contrast(image: np.ndarray, window: int) -> np.ndarray:
    mean = ndimage.uniform_filter(image, window, mode="reflect")
    square = ndimage.uniform_filter(image * image, window, mode="reflect")
    return np.sqrt(np.maximum(square - mean * mean, 0.0))


def fuse_contrast(ir: np.ndarray, vi: np.ndarray, window: int, sharpness: float) -> np.ndarray:
    """float32 (H, W) luminances in [0, 1] -> the fused luminance."""
    a = local_contrast(ir, window) ** sharpness
    b = local_contrast(vi, window) ** sharpness
    weight = (a + 1e-6) / (a + b + 2e-6)
    return (weight * ir + (1 - weight) * vi).astype(np.float32)


@register_method("contrast", display="Contrast", config=ContrastConfig)
def build(window: int = 7, sharpness: float = 2.0) -> LuminanceMethod:
    """Called with the config's ``contrast:`` section; the parameters enter the fingerprint."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"contrast.window: an odd number of pixels, got {window}")
    return LuminanceMethod("contrast", fuse_contrast, {"window": window, "sharpness": sharpness})
