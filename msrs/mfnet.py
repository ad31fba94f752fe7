"""The MFNet release layout (Ha et al., IROS 2017), read as it is shipped: no converted copy.

::

    <root>/images/<name>.png   4 channels: R, G, B = the visible image, the 4th = thermal
    <root>/labels/<name>.png   uint8 class indices 0..8 in MSRS's order (MSRS was made from MFNet)
    <root>/train.txt           one name per line (a trailing ".png" is accepted)
    <root>/val.txt             optional: the validation split
    <root>/test.txt
    <root>/test_day.txt, test_night.txt   optional: which test images are day and night scenes

The split lists are checked together (:func:`check_lists`) whenever a split is listed: a missing
``train.txt`` or ``test.txt``, an empty list, a name listed twice, or one name in two lists is a
:class:`~msrs.layout.DataError` naming the file, as is a listed name without an image or a label.
"""

from __future__ import annotations

from pathlib import Path

from msrs.layout import TEST, DataError, Pair, header, index_folder

IMAGES, LABELS = "images", "labels"
REQUIRED_LISTS = ("train", "test")
OPTIONAL_LISTS = ("val",)
TIME_LISTS = {"day": "test_day", "night": "test_night"}
_HOLDS = "an MFNet root holds images/, labels/, train.txt, val.txt and test.txt"


def _read_list(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file of image names") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    names = [name[:-4] if name.lower().endswith(".png") else name for name in names]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{path}: '{name}' is listed twice")
        seen.add(name)
    if not names:
        raise DataError(f"{path}: empty split list")
    return names


def split_lists(root: Path) -> dict[str, list[str]]:
    """split -> listed names, for the lists the root has (train and test are required)."""
    lists = {}
    for split in (*REQUIRED_LISTS, *OPTIONAL_LISTS):
        path = root / f"{split}.txt"
        if not path.is_file():
            if split in REQUIRED_LISTS:
                raise DataError(f"{path}: split list not found ({_HOLDS})")
            continue
        lists[split] = _read_list(path)
    return {split: lists[split] for split in ("train", "val", "test") if split in lists}


def check_lists(root: Path) -> dict[str, list[str]]:
    """The split lists, checked: no name in two lists, day/night lists within test."""
    lists = split_lists(root)
    owner: dict[str, str] = {}
    for split, names in lists.items():
        for name in names:
            if name in owner:
                raise DataError(
                    f"{root}: '{name}' is listed in both {owner[name]}.txt and {split}.txt "
                    "(a pair belongs to one split)"
                )
            owner[name] = split
    test = set(lists[TEST])
    for time_list in TIME_LISTS.values():
        path = root / f"{time_list}.txt"
        if path.is_file():
            stray = [name for name in _read_list(path) if name not in test]
            if stray:
                raise DataError(f"{path}: names not in test.txt: {', '.join(stray[:5])}")
    return lists


def mfnet_splits(root: Path) -> list[str]:
    return list(split_lists(root))


def mfnet_pairs(root: Path, split: str, labels: bool = True) -> list[Pair]:
    """The pairs of one listed split, sorted by name; ``ir`` and ``vi`` are the same file."""
    lists = check_lists(root)
    if split not in lists:
        raise DataError(f"{root / (split + '.txt')}: no split '{split}' ({_HOLDS})")
    images = index_folder(root / IMAGES)
    label_files = index_folder(root / LABELS) if labels else {}
    pairs = []
    for name in sorted(lists[split]):
        if name not in images:
            raise DataError(f"{root / IMAGES / (name + '.png')}: listed in {split}.txt but not found")
        label = None
        if labels:
            if name not in label_files:
                raise DataError(
                    f"{root / LABELS / (name + '.png')}: label of '{name}' (listed in {split}.txt) not found"
                )
            label = label_files[name]
        pairs.append(Pair(name, images[name], images[name], label, packed=True))
    return pairs


def check_packed_image(path: Path) -> tuple[int, int]:
    """Header check of one MFNet image: complete, four channels; returns (width, height)."""
    size, mode = header(path)
    if mode != "RGBA":
        channels = {"L": 1, "P": 1, "I": 1, "I;16": 1, "LA": 2, "RGB": 3}.get(mode, "?")
        raise DataError(
            f"{path}: {channels} channel(s) (mode {mode}), but an MFNet image needs 4 "
            "(R, G, B = visible, 4th = thermal)"
        )
    return size


def listed_time_of_day(root: Path) -> dict[str, str]:
    """name -> ``day`` / ``night`` from test_day.txt and test_night.txt (empty without them)."""
    times = {}
    for time, stem in TIME_LISTS.items():
        path = root / f"{stem}.txt"
        if path.is_file():
            times.update(dict.fromkeys(_read_list(path), time))
    return times
