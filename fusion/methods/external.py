"""Fused images produced by another tool (DDFM, TarDAL ... run from their own repositories).

``external:<folder>`` reads, for each source pair ``<name>``:

* ``<folder>/<split>/<name>.<ext>``, one subfolder per split of the data root (``train/`` and
  ``test/`` for MSRS; ``train/``, ``val/`` and ``test/`` for MFNet), the layout of
  ``fused/<method>/``;
* ``<folder>/<name>.<ext>`` (flat) for a fusion-only pair folder (one split, ``all``; ``all/``
  works too). A flat folder is refused for a root with splits: it cannot say which split an
  image was fused for, and a name in two splits would give the test split a training fusion.

``<ext>`` is any of png, jpg/jpeg, bmp, tif/tiff. Images may be 8-bit grayscale or 8-bit RGB,
and must have the size of their sources.

DECISION (fairness between Table 2 rows): every built-in method fuses luminance and gets the
visible image's Cb/Cr back, so a grey external image would lose partly for lack of colour, not
for its fusion. A grey image (mode L, or RGB with three equal channels) is therefore taken as
the fused luminance Y and recoloured with the visible Cb/Cr exactly as the built-in methods are
(:func:`fusion.colour.recolour`); ``grey="keep"`` (config ``external_grey: grey``) replicates it
to three grey channels instead. Colour images are used as they are.
:meth:`ExternalMethod.validate` checks a whole split from the file headers (no decoding) and
reports every problem in one :class:`~msrs.layout.DataError`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fusion.colour import recolour
from fusion.methods import EXTERNAL_PREFIX
from msrs.layout import ALL, IMAGE_SUFFIXES, DataError, Pair, list_split, root_splits

ACCEPTED_MODES = ("L", "RGB")
GREY_MODES = ("recolour", "keep")  # what happens to a grey image (see the module docstring)
_SPLIT_DIRS = ("train", "val", "test", ALL)  # split folders of any data root (msrs.layout)


def _index(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES:
                files.setdefault(path.stem, path)
    return files


def _size(path: Path) -> tuple[tuple[int, int], str]:
    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"{path}: unreadable image ({error})") from None


def _preview(items: list[str], limit: int = 5) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


class ExternalMethod:
    """Fused images read from ``folder`` (see the module docstring for the layout)."""

    def __init__(self, folder: str | Path, grey: str = "recolour"):
        """``grey``: ``recolour`` (grey images get the visible Cb/Cr) or ``keep``."""
        if grey not in GREY_MODES:
            raise ValueError(f"external method: grey must be one of {GREY_MODES}, got {grey!r}")
        self.folder = Path(folder)
        self.name = f"{EXTERNAL_PREFIX}{folder}"
        self.grey = grey
        self._cache: dict[str, dict[str, Path]] = {}

    @property
    def has_splits(self) -> bool:
        return any((self.folder / split).is_dir() for split in _SPLIT_DIRS)

    def split_folder(self, split: str) -> Path:
        """Where a split's images are: ``<folder>/<split>/``, or the folder itself for a pair
        folder's ``all`` when it has no subfolders."""
        return self.folder if split == ALL and not self.has_splits else self.folder / split

    def files(self, split: str) -> dict[str, Path]:
        """name -> file of one split."""
        if split not in self._cache:
            if not self.folder.is_dir():
                raise DataError(f"{self.folder}: external fused-image folder not found")
            self._cache[split] = _index(self.split_folder(split))
        return self._cache[split]

    def validate(self, pairs: list[Pair], split: str) -> None:
        """Every pair of ``split`` has a fused image of its size, 8-bit grayscale or RGB; a
        split other than a pair folder's ``all`` needs its own subfolder."""
        self._check_layout(split)
        problems = self._problems(pairs, split)
        if problems:
            raise DataError(problems)

    def _check_layout(self, split: str) -> None:
        if split != ALL and not self.has_splits and _index(self.folder):
            raise DataError(
                f"{self.folder}: a flat folder of fused images, but the data root has splits: put each "
                f"split's images in {self.folder}/<split>/ (train/, test/; MFNet also val/), since a "
                "flat folder cannot say which split an image was fused for"
            )

    def _problems(self, pairs: list[Pair], split: str) -> str | None:
        """What is missing or wrong in one split, in one sentence (None when nothing is)."""
        files = self.files(split)
        where = self.split_folder(split)
        missing, wrong = [], []
        for pair in pairs:
            path = files.get(pair.name)
            if path is None:
                missing.append(pair.name)
                continue
            size, mode = _size(path)
            source, _ = _size(pair.ir)
            if size != source:
                wrong.append(f"{path.name} is {size[0]}x{size[1]}, source is {source[0]}x{source[1]}")
            elif mode not in ACCEPTED_MODES:
                wrong.append(f"{path.name} has mode {mode} (need 8-bit grayscale L or RGB)")
        if not (missing or wrong):
            return None
        parts = []
        if missing:
            parts.append(f"{len(missing)} of {len(pairs)} image(s) missing: {_preview(sorted(missing))}")
            hint = _near_names(where, missing)
            if hint:
                parts[-1] += f" ({hint})"
        if wrong:
            parts.append(f"{len(wrong)} image(s) wrong: {_preview(wrong)}")
        image = "<name>.<png|jpg|jpeg|bmp|tif|tiff>"
        return (
            f"external fused images in {where} for split '{split}': "
            + "; ".join(parts)
            + f" (expected {where}/{image}, the data root's names)"
        )

    def validate_all(self, data_root: str | Path) -> dict[str, int]:
        """Validate every split of a data root (``all`` of an ir/ vi/ pair folder); one error
        names the problems of every split."""
        counts, problems = {}, []
        for split in root_splits(data_root):
            self._check_layout(split)
            pairs = list_split(data_root, split, labels=False)
            problem = self._problems(pairs, split)
            if problem:
                problems.append(problem)
            counts[split] = len(pairs)
        if problems:
            raise DataError("; ".join(problems))
        return counts

    def fingerprint(self) -> str:
        """Folder path plus a digest of every image's name, size in bytes and mtime."""
        digest = hashlib.sha1()
        count = 0
        if self.folder.is_dir():
            for path in sorted(self.folder.rglob("*")):
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                    stat = path.stat()
                    digest.update(
                        f"{path.relative_to(self.folder)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode()
                    )
                    count += 1
        return f"{EXTERNAL_PREFIX}{self.folder.resolve()}:{count}:{digest.hexdigest()[:16]}:grey-{self.grey}"

    def fuse_pair(self, pair: Pair, split: str) -> np.ndarray:
        path = self.files(split).get(pair.name)
        if path is None:
            raise DataError(f"{self.split_folder(split)}: no fused image named '{pair.name}'")
        try:
            with Image.open(path) as image:
                if image.mode not in ACCEPTED_MODES:
                    raise DataError(f"{path}: mode {image.mode}, need 8-bit grayscale or RGB")
                array = np.asarray(image)
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise DataError(f"{path}: unreadable or truncated image ({error})") from None
        if array.ndim == 3 and not _equal_channels(array):
            return np.ascontiguousarray(array, dtype=np.uint8)
        fused_y = array if array.ndim == 2 else array[..., 0]
        if self.grey == "recolour":
            return recolour(fused_y, pair.read_vi())
        return np.ascontiguousarray(np.repeat(fused_y[..., None], 3, axis=2), dtype=np.uint8)


def _near_names(folder: Path, missing: list[str]) -> str | None:
    """A hint when files of ``folder`` have a missing name with a suffix or another extension
    (``00001D_fused.png``, ``00001D.PNG.txt``)."""
    if not folder.is_dir():
        return None
    stems = {path.name.split(".")[0]: path.name for path in folder.iterdir() if path.is_file()}
    for name in missing:
        near = next((file for stem, file in stems.items() if stem != name and stem.startswith(name)), None)
        near = near or next((file for stem, file in stems.items() if stem == name), None)
        if near is not None:
            return f"a file named {near} is there: the fused image of {name} must be called {name}.png"
    return None


def _equal_channels(rgb: np.ndarray) -> bool:
    return np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])


__all__ = ["ExternalMethod", "ACCEPTED_MODES", "GREY_MODES"]
