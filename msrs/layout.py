"""Data roots on disk: which layout a folder is, its splits, its pairs, and validation.

Three layouts are read, told apart by what the folder holds (:func:`detect_layout`):

* **MSRS** (Linfeng-Tang/MSRS): ``<root>/{train,test}/{ir,vi,Segmentation_labels}/<name>.png``,
  names such as ``00001D.png`` (D day, N night); infrared single channel, visible RGB, labels
  uint8 class indices 0..8 (255 = ignore).
* **MFNet** (Ha et al. 2017, the dataset MSRS was made from, in its own release layout):
  ``<root>/images/<name>.png`` with four channels (R, G, B = the visible image, the 4th = the
  thermal image), ``<root>/labels/<name>.png`` (class indices in MSRS's order), and the split
  lists ``train.txt``, ``val.txt`` (optional) and ``test.txt``, one name per line
  (:mod:`msrs.mfnet`).
* **Fusion-only pair folders** (RoadScene, TNO as the fusion repositories ship them):
  ``<folder>/{ir,vi}/<name>.<ext>``, no labels, one split called ``all``, any size, JPEG or PNG.

Files of one pair share their stem; extensions may differ. A :class:`Pair` reads its own
modalities (:meth:`Pair.read_ir`, :meth:`Pair.read_vi`, :meth:`Pair.read_label`), whatever
the layout. Every problem is reported as a :class:`DataError` whose message names the file(s)
and the problem, so that no traceback from inside PIL or numpy reaches the user.

Validation reads image headers and the last bytes of each file (a PNG must end with its IEND
chunk, a JPEG with its EOI marker), not the pixels, so a root of 1,444 pairs is checked in well
under a second per hundred pairs. ``check_labels=True`` additionally decodes every label and
checks its values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from configs.schema import ToolError
from msrs.classes import IGNORE_INDEX, NUM_CLASSES

IR_DIR, VI_DIR, LABEL_DIR = "ir", "vi", "Segmentation_labels"
SPLITS = ("train", "test")  # an MSRS root's splits
ALL = "all"  # the single split of a fusion-only pair folder
TEST = "test"
VAL = "val"  # a data root's own validation split (MFNet's val.txt)
MSRS, MFNET, PAIRS = "MSRS", "MFNet", "pairs"  # the layouts
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LABEL_MODES = ("L", "P", "I", "I;16")
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


class DataError(ToolError, ValueError):
    """Bad input data; the message names the file(s) and the problem in one line."""


@dataclass(frozen=True)
class Pair:
    """One infrared/visible pair (and its label, when the layout has labels). In the MFNet
    layout (``packed``) ``ir`` and ``vi`` are the same four-channel file."""

    name: str  # the shared stem, e.g. "00001D"
    ir: Path
    vi: Path
    label: Path | None = None
    packed: bool = False

    def read_ir(self) -> np.ndarray:
        """Infrared as uint8 (H, W)."""
        return _decode_packed(self.ir)[..., 3] if self.packed else read_ir(self.ir)

    def read_vi(self) -> np.ndarray:
        """Visible as uint8 (H, W, 3) RGB."""
        return np.ascontiguousarray(_decode_packed(self.vi)[..., :3]) if self.packed else read_vi(self.vi)

    def read_label(self) -> np.ndarray:
        """Label as uint8 (H, W) class indices, values checked."""
        if self.label is None:
            raise DataError(f"{self.ir}: pair '{self.name}' has no label")
        return read_label(self.label)

    def files(self, parts=("ir", "vi", "label")) -> list[Path]:
        """The files holding ``parts`` of this pair, each once."""
        paths = [getattr(self, part) for part in parts if getattr(self, part) is not None]
        return list(dict.fromkeys(paths))


# ----------------------------------------------------------------------------- layouts


def detect_layout(root: str | Path) -> str:
    """:data:`MSRS`, :data:`MFNET` or :data:`PAIRS`, from the folder's contents."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: data root not found")
    if not root.is_dir():
        raise DataError(f"{root}: data root is a file, not a folder")
    if any((root / split).is_dir() for split in SPLITS):
        return MSRS
    if (root / "images").is_dir():
        return MFNET
    if (root / IR_DIR).is_dir():
        return PAIRS
    raise DataError(
        f"{root}: not a data root: expected train/ and test/ (MSRS), images/ + labels/ + "
        "train.txt/test.txt (MFNet), or ir/ + vi/ (a fusion-only pair folder)"
    )


def root_splits(root: str | Path) -> list[str]:
    """The splits of a data root: ``train``, ``test`` (MSRS); ``train``, ``val`` when listed,
    ``test`` (MFNet); ``all`` (a pair folder)."""
    layout = detect_layout(root)
    if layout == MFNET:
        from msrs.mfnet import mfnet_splits

        return mfnet_splits(Path(root))
    return [ALL] if layout == PAIRS else list(SPLITS)


def training_splits(root: str | Path) -> list[str]:
    """The splits a fusion method may train on: every split but ``test`` (a pair folder:
    ``all``). Fusion training never sees a test image."""
    return [split for split in root_splits(root) if split != TEST]


def is_labelled(root: str | Path) -> bool:
    """True for layouts with segmentation labels (MSRS, MFNet)."""
    return detect_layout(root) != PAIRS


def list_split(root: str | Path, split: str, labels: bool = True) -> list[Pair]:
    """The pairs of one split of any layout, sorted by name (``labels`` is ignored for a pair
    folder, which has none)."""
    root = Path(root)
    layout = detect_layout(root)
    if layout == MFNET:
        from msrs.mfnet import mfnet_pairs

        return mfnet_pairs(root, split, labels)
    splits = root_splits(root)
    if split not in splits:
        what = (
            "an MSRS root holds train/ and test/" if layout == MSRS else "a pair folder is one split, 'all'"
        )
        raise DataError(f"{root / split}: no split '{split}' ({what})")
    if layout == PAIRS:
        return list_pairs(root)
    if not (root / split).is_dir():
        raise DataError(f"{root / split}: split folder not found (an MSRS root holds train/ and test/)")
    return list_pairs(root / split, labels=labels)


def list_pairs(folder: str | Path, labels: bool = False) -> list[Pair]:
    """List the pairs of a folder holding ``ir/`` and ``vi/`` (and ``Segmentation_labels/``
    when ``labels``), sorted by name. Names missing from a modality are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    ir, vi = index_folder(folder / IR_DIR), index_folder(folder / VI_DIR)
    modalities = {IR_DIR: ir, VI_DIR: vi}
    if labels:
        modalities[LABEL_DIR] = index_folder(folder / LABEL_DIR)
    every = set().union(*modalities.values())
    for sub, files in modalities.items():
        missing = every - set(files)
        if missing:
            raise DataError(
                f"{folder / sub}: missing {len(missing)} name(s) present in the "
                f"other folders: {preview(missing)}"
            )
    if not every:
        raise DataError(f"{folder}: empty (no images in {IR_DIR}/ and {VI_DIR}/)")
    return [
        Pair(name, ir[name], vi[name], modalities[LABEL_DIR][name] if labels else None)
        for name in sorted(every)
    ]


def time_of_day(root: str | Path | None, names: list[str]) -> dict[str, str]:
    """``day`` or ``night`` per name: MFNet's ``test_day.txt`` / ``test_night.txt`` where the
    root has them, else the last letter of the name (MSRS and MFNet: ``D`` day, ``N`` night).
    Names that say neither are left out."""
    if root is not None and detect_layout(root) == MFNET:
        from msrs.mfnet import listed_time_of_day

        listed = listed_time_of_day(root)
        if listed:
            return {name: listed[name] for name in names if name in listed}
    suffix = {"D": "day", "N": "night"}
    return {name: suffix[name[-1]] for name in names if name[-1:] in suffix}


# ----------------------------------------------------------------------------- files


def index_folder(folder: Path) -> dict[str, Path]:
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


def preview(names) -> str:
    """The first five of ``names`` (sorted), and how many more."""
    names = sorted(names)
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def header(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and PIL mode from the header; checks the file is complete."""
    try:
        with Image.open(path) as image:
            size, mode, fmt = image.size, image.mode, image.format
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
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
    if pair.packed:
        from msrs.mfnet import check_packed_image

        ir_size = check_packed_image(pair.ir)
    else:
        ir_size, _ = header(pair.ir)
        vi_size, _ = header(pair.vi)
        if ir_size != vi_size:
            raise DataError(
                f"{pair.ir} is {ir_size[0]}x{ir_size[1]} but {pair.vi} is "
                f"{vi_size[0]}x{vi_size[1]} (width x height): sizes differ"
            )
    if pair.label is not None:
        label_size, mode = header(pair.label)
        if label_size != ir_size:
            raise DataError(
                f"{pair.label} is {label_size[0]}x{label_size[1]} but {pair.ir} is "
                f"{ir_size[0]}x{ir_size[1]} (width x height): sizes differ"
            )
        if mode not in LABEL_MODES:
            raise DataError(
                f"{pair.label}: label must be a single-channel class-index image, got mode {mode}"
            )
    return ir_size[1], ir_size[0]


def _decode(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if mode == "label":
                if image.mode not in LABEL_MODES:
                    raise DataError(
                        f"{path}: label must be a single-channel class-index image, got mode {image.mode}"
                    )
                array = np.asarray(image)
                return array.astype(np.uint8) if array.max(initial=0) <= 255 else array
            if mode == "RGBA" and image.mode != "RGBA":
                raise DataError(
                    f"{path}: {len(image.getbands())} channel(s) ({image.mode}); an MFNet image needs 4 "
                    "(R, G, B = visible, 4th = thermal)"
                )
            return np.asarray(image.convert(mode))
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: unreadable or truncated image ({error})") from None


def _decode_packed(path: Path) -> np.ndarray:
    """An MFNet image as uint8 (H, W, 4): R, G, B (visible) and thermal."""
    return _decode(Path(path), "RGBA")


def read_ir(path: str | Path) -> np.ndarray:
    """Infrared file as uint8 (H, W); a 3-channel file is converted to luminance."""
    return _decode(Path(path), "L")


def read_vi(path: str | Path) -> np.ndarray:
    """Visible (or fused) file as uint8 (H, W, 3) RGB."""
    return _decode(Path(path), "RGB")


def check_label_values(label: np.ndarray, path: Path) -> None:
    bad = np.unique(label[(label >= NUM_CLASSES) & (label != IGNORE_INDEX)])
    if bad.size:
        raise DataError(
            f"{path}: label values {bad[:8].tolist()} outside 0..{NUM_CLASSES - 1} and {IGNORE_INDEX}"
        )


def read_label(path: str | Path) -> np.ndarray:
    """Label file as uint8 (H, W) class indices; values are checked."""
    path = Path(path)
    label = _decode(path, "label")
    check_label_values(label, path)
    return label.astype(np.uint8)


def validate_pairs(pairs: list[Pair], check_labels: bool = False) -> None:
    for pair in pairs:
        check_pair(pair)
        if check_labels and pair.label is not None:
            read_label(pair.label)


def validate_root(root: str | Path, check_labels: bool = False) -> dict[str, int]:
    """Validate a data root of any layout before any stage uses it; returns pairs per split.
    An empty split is an error."""
    root = Path(root)
    counts = {}
    if detect_layout(root) == MFNET:
        from msrs.mfnet import check_lists

        check_lists(root)
    seen: dict[str, str] = {}
    for split in root_splits(root):
        pairs = list_split(root, split, labels=True)
        if not pairs:
            raise DataError(f"{root / split}: empty split")
        again = [pair.name for pair in pairs if pair.name in seen]
        if again:
            raise DataError(
                f"{root / split}: {len(again)} name(s) also in the split '{seen[again[0]]}' "
                f"({', '.join(again[:5])}{' ...' if len(again) > 5 else ''}): an image listed in two "
                "splits would be trained on and scored, and fused images named by it could not tell "
                "the splits apart"
            )
        seen |= dict.fromkeys((pair.name for pair in pairs), split)
        validate_pairs(pairs, check_labels=check_labels)
        counts[split] = len(pairs)
    return counts


def describe_root(root: str | Path) -> dict:
    """What a data root is: ``layout``, pairs per split and, for the test split (or a pair
    folder's ``all``), how many are day and night scenes."""
    root = Path(root)
    splits = root_splits(root)
    counts = {split: len(list_split(root, split, labels=False)) for split in splits}
    scored = TEST if TEST in splits else splits[-1]
    names = [pair.name for pair in list_split(root, scored, labels=False)]
    times = time_of_day(root, names)
    return {
        "layout": detect_layout(root),
        "counts": counts,
        "day_night": {
            "split": scored,
            "day": sum(1 for name in names if times.get(name) == "day"),
            "night": sum(1 for name in names if times.get(name) == "night"),
        },
    }
