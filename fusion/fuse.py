"""The fuse stage: run one method over the pairs of a split, writing ``<out_dir>/<name>.png``.

Images are 8-bit RGB PNGs named like their sources, each written atomically (temporary file,
then rename). ``<out_dir>/fingerprint.json`` maps each written name to the fingerprint of the
method that made it, so a rerun skips files the same method (same parameters) already wrote
and rewrites those another method or setting wrote.

Source pairs come from an MSRS root (splits ``train``/``test``) or a fusion-only ``ir/ vi/``
folder such as RoadScene, which is treated as one split called ``all``
(:func:`source_splits`, :func:`source_pairs`).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from configs.progress import progress_bar
from configs.runtime import write_bytes_atomic, write_json_atomic
from msrs.layout import SPLITS, Pair, list_pairs, list_split

FINGERPRINTS = "fingerprint.json"
ALL = "all"  # the single split of a fusion-only pair folder


def is_pair_folder(root: str | Path) -> bool:
    """True for a fusion-only ``ir/ vi/`` folder (no ``train/``/``test/`` splits)."""
    root = Path(root)
    return not any((root / split).is_dir() for split in SPLITS) and (root / "ir").is_dir()


def source_splits(root: str | Path) -> list[str]:
    """``["train", "test"]`` for an MSRS root, ``["all"]`` for a fusion-only pair folder."""
    return [ALL] if is_pair_folder(root) else list(SPLITS)


def source_pairs(root: str | Path, split: str) -> list[Pair]:
    """The pairs of ``split`` (``all`` = the whole fusion-only pair folder); no labels."""
    if split == ALL and is_pair_folder(root):
        return list_pairs(root)
    return list_split(root, split, labels=False)


def encode_png(image: np.ndarray) -> bytes:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"a fused image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _read_fingerprints(out_dir: Path) -> dict[str, str]:
    path = out_dir / FINGERPRINTS
    if not path.is_file():
        return {}
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    return payload if isinstance(payload, dict) else {}


def fuse_split(method, pairs: list[Pair], out_dir: str | Path, progress: bool = True,
               split: str | None = None) -> dict:
    """Fuse every pair into ``out_dir/<name>.png``; returns ``{"written", "skipped", "seconds"}``
    (``seconds``: wall time spent fusing and writing the written images).

    ``split`` is passed to ``method.fuse_pair`` (methods reading precomputed files need it);
    by default it is the name of ``out_dir`` (``fused/<method>/<split>/``). A method with a
    ``validate(pairs, split)`` (external folders) is validated before anything is written."""
    out_dir = Path(out_dir)
    split = split or out_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = method.fingerprint()
    if hasattr(method, "validate"):
        method.validate(pairs, split)
    known = _read_fingerprints(out_dir)
    written = skipped = 0
    seconds = 0.0
    last_saved = time.perf_counter()
    try:
        for pair in progress_bar(pairs, f"fuse {method.name} {split}", progress):
            target = out_dir / f"{pair.name}.png"
            if known.get(pair.name) == fingerprint and target.is_file():
                skipped += 1
                continue
            start = time.perf_counter()
            write_bytes_atomic(target, encode_png(method.fuse_pair(pair, split)))
            seconds += time.perf_counter() - start
            known[pair.name] = fingerprint
            written += 1
            if time.perf_counter() - last_saved > 5.0:
                write_json_atomic(out_dir / FINGERPRINTS, known)
                last_saved = time.perf_counter()
    finally:
        if written:
            write_json_atomic(out_dir / FINGERPRINTS, known)
    return {"written": written, "skipped": skipped, "seconds": seconds}


__all__ = ["fuse_split", "source_splits", "source_pairs", "is_pair_folder", "encode_png", "ALL",
           "FINGERPRINTS"]
