"""The fuse stage: run one method over the pairs of a split, writing ``<out_dir>/<name>.png``.

Images are 8-bit RGB PNGs named like their sources, each written atomically (temporary file,
then rename). Whether a fused folder is current is the stage engine's business
(``pipelines/engine``: the folder's ``done.json`` records the method, its parameters and the
sources it was made from); this module only writes.

Source pairs come from any data root (``msrs.layout``: the splits of an MSRS or MFNet root,
or the one split ``all`` of a fusion-only ``ir/ vi/`` folder such as RoadScene), listed by
``msrs.layout.root_splits`` and ``msrs.layout.list_split``.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from msrs.layout import Pair
from runtime.files import write_bytes_atomic
from runtime.progress import progress_bar


def encode_png(image: np.ndarray) -> bytes:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"a fused image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def fuse_split(
    method, pairs: list[Pair], out_dir: str | Path, progress: bool = True, split: str | None = None
) -> dict:
    """Fuse every pair into ``out_dir/<name>.png``; returns ``{"written", "seconds"}``
    (``seconds``: wall time spent fusing and writing).

    ``split`` is passed to ``method.fuse_pair`` (methods reading precomputed files need it);
    by default it is the name of ``out_dir`` (``fused/<method>/<split>/``). A method with a
    ``validate(pairs, split)`` (external folders) is validated before anything is written."""
    out_dir = Path(out_dir)
    split = split or out_dir.name
    if hasattr(method, "validate"):
        method.validate(pairs, split)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for pair in progress_bar(pairs, f"fuse {method.name} {split}", progress):
        write_bytes_atomic(out_dir / f"{pair.name}.png", encode_png(method.fuse_pair(pair, split)))
    return {"written": len(pairs), "seconds": time.perf_counter() - start}


__all__ = ["fuse_split", "encode_png"]
