"""Pair folders on disk: listing, loading and validation.

Two layouts are read:

* **MSRS** (Linfeng-Tang/MSRS): ``<root>/{train,test}/{ir,vi,Segmentation_labels}/<name>.png``,
  names such as ``00001D.png`` (D day, N night); infrared single channel, visible RGB, labels
  uint8 class indices 0..8 (255 = ignore).
* **Fusion-only pair folders** (RoadScene, TNO as the fusion repositories ship them):
  ``<folder>/{ir,vi}/<name>.<ext>``, no labels, no splits, any size, JPEG or PNG.

Files of one pair share their stem; extensions may differ. Every problem is reported as a
:class:`DataError` whose message names the file(s) and the problem, so that no traceback from
inside PIL or numpy reaches the user.

Validation reads image headers and the last bytes of each file (a PNG must end with its IEND
chunk, a JPEG with its EOI marker), not the pixels, so a root of 1,444 pairs is checked in well
under a second per hundred pairs. ``check_labels=True`` additionally decodes every label and
checks its values: the explicit, slower option.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from msrs.classes import IGNORE_INDEX, NUM_CLASSES

IR_DIR, VI_DIR, LABEL_DIR = "ir", "vi", "Segmentation_labels"
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


class DataError(ValueError):
    """Bad input data; the message names the file(s) and the problem in one line."""


@dataclass(frozen=True)
class Pair:
    """One infrared/visible pair (and its label, when the layout has labels)."""

    name: str  # the shared stem, e.g. "00001D"
    ir: Path
    vi: Path
    label: Path | None = None


def _index(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    files: dict[str, Path] = {}
    for path in folder.iterdir():
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in files:
            raise DataError(
                f"{folder}: two files share the name '{path.stem}' ({files[path.stem].name}, {path.name})"
            )
        files[path.stem] = path
    return files


def _preview(names) -> str:
    names = sorted(names)
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def list_pairs(folder: str | Path, labels: bool = False) -> list[Pair]:
    """List the pairs of a folder holding ``ir/`` and ``vi/`` (and ``Segmentation_labels/``
    when ``labels``), sorted by name. Names missing from a modality are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    ir, vi = _index(folder / IR_DIR), _index(folder / VI_DIR)
    modalities = {IR_DIR: ir, VI_DIR: vi}
    if labels:
        modalities[LABEL_DIR] = _index(folder / LABEL_DIR)
    every = set().union(*modalities.values())
    for sub, files in modalities.items():
        missing = every - set(files)
        if missing:
            raise DataError(
                f"{folder / sub}: missing {len(missing)} name(s) present in the "
                f"other folders: {_preview(missing)}"
            )
    if not every:
        raise DataError(f"{folder}: empty (no images in {IR_DIR}/ and {VI_DIR}/)")
    return [
        Pair(name, ir[name], vi[name], modalities[LABEL_DIR][name] if labels else None)
        for name in sorted(every)
    ]


def list_split(root: str | Path, split: str, labels: bool = True) -> list[Pair]:
    """The pairs of one MSRS split (``train`` or ``test``)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data root not found")
    if not (root / split).is_dir():
        raise DataError(
            f"{root / split}: split folder not found (an MSRS root holds {' and '.join(SPLITS)}/)"
        )
    return list_pairs(root / split, labels=labels)


def _header(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and PIL mode from the header; checks the file is complete."""
    try:
        with Image.open(path) as image:
            size, mode, fmt = image.size, image.mode, image.format
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"{path}: unreadable image ({error})") from None
    if fmt in ("PNG", "JPEG"):
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 64))
            tail = handle.read()
        end = _PNG_END if fmt == "PNG" else _JPEG_END
        if end not in tail:
            raise DataError(f"{path}: truncated {fmt} file (no end marker)")
    return size, mode


def check_pair(pair: Pair) -> tuple[int, int]:
    """Header-level checks of one pair; returns its (height, width)."""
    ir_size, _ = _header(pair.ir)
    vi_size, _ = _header(pair.vi)
    if ir_size != vi_size:
        raise DataError(
            f"{pair.ir} is {ir_size[0]}x{ir_size[1]} but {pair.vi} is "
            f"{vi_size[0]}x{vi_size[1]} (width x height): sizes differ"
        )
    if pair.label is not None:
        label_size, mode = _header(pair.label)
        if label_size != ir_size:
            raise DataError(
                f"{pair.label} is {label_size[0]}x{label_size[1]} but {pair.ir} is "
                f"{ir_size[0]}x{ir_size[1]} (width x height): sizes differ"
            )
        if mode not in ("L", "P", "I", "I;16"):
            raise DataError(
                f"{pair.label}: label must be a single-channel class-index image, got mode {mode}"
            )
    return ir_size[1], ir_size[0]


def _decode(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if mode == "label":
                if image.mode not in ("L", "P", "I", "I;16"):
                    raise DataError(
                        f"{path}: label must be a single-channel class-index image, got mode {image.mode}"
                    )
                array = np.asarray(image)
                return array.astype(np.uint8) if array.max(initial=0) <= 255 else array
            return np.asarray(image.convert(mode))
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: unreadable or truncated image ({error})") from None


def read_ir(path: str | Path) -> np.ndarray:
    """Infrared as uint8 (H, W); a 3-channel file is converted to luminance."""
    return _decode(Path(path), "L")


def read_vi(path: str | Path) -> np.ndarray:
    """Visible as uint8 (H, W, 3) RGB."""
    return _decode(Path(path), "RGB")


def check_label_values(label: np.ndarray, path: Path) -> None:
    bad = np.unique(label[(label >= NUM_CLASSES) & (label != IGNORE_INDEX)])
    if bad.size:
        raise DataError(
            f"{path}: label values {bad[:8].tolist()} outside 0..{NUM_CLASSES - 1} and {IGNORE_INDEX}"
        )


def read_label(path: str | Path) -> np.ndarray:
    """Label as uint8 (H, W) class indices; values are checked."""
    path = Path(path)
    label = _decode(path, "label")
    check_label_values(label, path)
    return label.astype(np.uint8)


def validate_pairs(pairs: list[Pair], check_labels: bool = False) -> None:
    for pair in pairs:
        check_pair(pair)
        if check_labels and pair.label is not None:
            read_label(pair.label)


def validate_root(
    root: str | Path, splits=SPLITS, labels: bool = True, check_labels: bool = False
) -> dict[str, int]:
    """Validate an MSRS root before any stage uses it; returns pairs per split."""
    counts = {}
    for split in splits:
        pairs = list_split(root, split, labels=labels)
        validate_pairs(pairs, check_labels=check_labels)
        counts[split] = len(pairs)
    return counts
