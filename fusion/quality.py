"""The quality stage: fusion metrics (Table 1) of a folder of fused images, one row per image.

Metrics are taken on luminance, as in the fusion literature: the fused image's and the
visible image's BT.601 Y rounded to uint8 (:func:`fusion.colour.luminance`), the infrared image
as stored. See :mod:`fusion.metrics` for the metric definitions and the ``python`` / ``matlab``
conventions.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fusion.colour import luminance
from msrs.layout import IMAGE_SUFFIXES, DataError, Pair, read_vi


def _fused_path(fused_dir: Path, name: str) -> Path:
    for suffix in (".png", *IMAGE_SUFFIXES):
        path = fused_dir / f"{name}{suffix}"
        if path.is_file():
            return path
    raise DataError(f"{fused_dir}: no fused image named '{name}' (run the fuse stage first)")


def evaluate_split(fused_dir: str | Path, pairs: list[Pair], convention: str = "python") -> pd.DataFrame:
    """Metrics of ``fused_dir/<name>.png`` against each pair: columns ``name`` then the keys of
    :func:`fusion.metrics.evaluate` (EN SD SF AG MI SCD VIF Qabf SSIM)."""
    from fusion.metrics import evaluate  # keeps this module importable alone

    fused_dir = Path(fused_dir)
    rows = []
    for pair in pairs:
        fused_y = luminance(read_vi(_fused_path(fused_dir, pair.name)))
        ir = pair.read_ir()
        vi_y = luminance(pair.read_vi())
        if fused_y.shape != ir.shape:
            raise DataError(
                f"{fused_dir / pair.name}: fused image is {fused_y.shape[1]}x"
                f"{fused_y.shape[0]}, sources are {ir.shape[1]}x{ir.shape[0]}"
            )
        rows.append({"name": pair.name, **evaluate(fused_y, ir, vi_y, convention)})
    return pd.DataFrame.from_records(rows)


__all__ = ["evaluate_split"]
