"""The interface every fusion method follows, and the luminance-fusion base most of them share.

A *method object* has

* ``name``: the registry name (``average``, ``gtf``, ``external:/data/DDFM`` ...);
* ``fingerprint() -> str``: a stable string naming the method *and* its parameters (part of
  the fuse stage's identity in ``pipelines/engine``);
* ``fuse_pair(pair, split) -> np.ndarray``: uint8 (H, W, 3) RGB for one
  :class:`msrs.layout.Pair` (``split`` only matters to methods that read precomputed files).

:class:`LuminanceMethod` is the usual recipe of the infrared-visible fusion literature
(SeAFusion, CDDFuse, SSPFusion): fuse the infrared image with the visible image's Y channel
(BT.601 full range, :mod:`fusion.colour`), then put the visible Cb/Cr back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from fusion.colour import rgb_to_ycbcr, to_uint8, ycbcr_to_rgb
from msrs.layout import Pair


@runtime_checkable
class FusionMethod(Protocol):
    name: str

    def fingerprint(self) -> str: ...

    def fuse_pair(self, pair: Pair, split: str) -> np.ndarray: ...


def fuse_luminance(
    fuse_y: Callable[[np.ndarray, np.ndarray], np.ndarray], ir: np.ndarray, vi: np.ndarray
) -> np.ndarray:
    """Fuse uint8 infrared (H, W) with uint8 visible RGB (H, W, 3) on luminance; uint8 RGB out."""
    ir = np.asarray(ir)
    vi = np.asarray(vi)
    if ir.ndim == 3:
        ir = to_uint8(rgb_to_ycbcr(ir)[..., 0])
    if vi.ndim == 2:
        vi = np.repeat(vi[..., None], 3, axis=2)
    if ir.shape != vi.shape[:2]:
        raise ValueError(f"infrared is {ir.shape} but visible is {vi.shape[:2]} (height, width)")
    ycbcr = rgb_to_ycbcr(vi)
    ir_y = ir.astype(np.float32) / np.float32(255.0)
    vi_y = ycbcr[..., 0].astype(np.float32)
    fused_y = np.asarray(fuse_y(ir_y, vi_y), dtype=np.float64)
    if fused_y.shape != ir.shape:
        raise ValueError(f"fused luminance is {fused_y.shape}, expected {ir.shape}")
    ycbcr[..., 0] = np.clip(fused_y, 0.0, 1.0)
    return to_uint8(ycbcr_to_rgb(ycbcr))


@dataclass
class LuminanceMethod:
    """A method defined by ``fuse_y(ir_y, vi_y) -> fused_y`` on float32 (H, W) arrays in [0, 1].

    ``params`` are the keyword arguments given to ``fuse_y`` (and what the fingerprint records).
    """

    name: str
    fuse_y: Callable[..., np.ndarray]
    params: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        return f"{self.name}:" + json.dumps(self.params, sort_keys=True, default=str)

    def fuse(self, ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
        """In-memory fusion: uint8 infrared (H, W) and uint8 visible RGB -> uint8 RGB."""
        return fuse_luminance(lambda a, b: self.fuse_y(a, b, **self.params), ir, vi)

    def fuse_pair(self, pair: Pair, split: str) -> np.ndarray:
        return self.fuse(pair.read_ir(), pair.read_vi())
