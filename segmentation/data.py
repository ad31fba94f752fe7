"""(image, label) data for one input, and the albumentations transforms.

An *input* is ``infrared``, ``visible`` (read from the data root: MSRS or MFNet,
``msrs.layout``) or a folder of fused images named like the pairs (``image_dir``: one folder
per split). The splits are small enough to hold in
memory (MSRS train at 480x640 is 1 GB as uint8), so they are decoded once and augmented on the
fly: on a 2-core machine this keeps data loading off the compute threads entirely (no worker
processes) and the training loop within a few percent of the bare model step.

Every sample's augmentation is seeded from (seed, epoch, index), so the stream is the same
whatever the number of worker processes or DDP ranks, and a resumed run sees exactly the
batches an uninterrupted run would.

On a GPU the loader's worker processes must keep up with the model step (about 300 images/s
for one node, docs/gpus-and-clusters.md). What makes them fast (pipelines/benchmark.py
loader measures each): a sample leaves its worker as the augmented uint8 crop and uint8 label,
1.2 MB at 480x640 where float32 image and int64 label made 6.1 MB, and the training step
normalises the image and widens the label on the device (:func:`normalise`, the same float32
arithmetic as before); the workers persist across epochs, the epoch reaching them through
shared memory (:meth:`AugmentedSplit.set_epoch`); OpenCV runs one thread in each of them
(:func:`training_loader`), since the workers are the parallelism.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from configs.schema import ConfigError
from msrs.classes import IGNORE_INDEX, NUM_CLASSES
from msrs.layout import IMAGE_SUFFIXES, DataError, list_split, read_vi
from runtime.training import sample_seed

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
# padding colour: the normalisation mean, so padded pixels enter the network as ~0 (as a test
# image's average pixel does) and not as -2, which BatchNorm would learn from and never see at test
PAD_FILL = tuple(int(round(float(value))) for value in IMAGENET_MEAN)


def _fused_files(image_dir: Path, names: list[str]) -> dict[str, Path]:
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: fused image folder not found")
    files = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    missing = [n for n in names if n not in files]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(f"{image_dir}: missing {len(missing)} of {len(names)} fused images: {shown}")
    return files


def input_image(input_name: str, pair, fused_file: Path | None = None) -> np.ndarray:
    """The uint8 (H, W, 3) image the network sees for one pair: infrared replicated to three
    channels, visible RGB, or the fused file of a ``fused:`` input (grey files become three
    equal channels)."""
    if input_name == "infrared":
        return np.repeat(pair.read_ir()[..., None], 3, axis=2)
    if input_name == "visible":
        return pair.read_vi()
    if fused_file is None:
        raise ValueError(f"input '{input_name}' needs a folder of fused images")
    return read_vi(fused_file)


def load_split(
    data_root: Path, split: str, input_name: str, image_dir: Path | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode one split: images uint8 (N, H, W, 3), labels uint8 (N, H, W), names."""
    pairs = list_split(data_root, split, labels=True)
    names = [p.name for p in pairs]
    files = _fused_files(Path(image_dir), names) if image_dir is not None else None
    images, labels = [], []
    for pair in pairs:
        label = pair.read_label()
        image = input_image(input_name, pair, files[pair.name] if files is not None else None)
        if image.shape[:2] != label.shape:
            where = files[pair.name] if files is not None else pair.ir
            raise DataError(
                f"{where}: image is {image.shape[1]}x{image.shape[0]} but its label "
                f"{pair.label} is {label.shape[1]}x{label.shape[0]} (width x height)"
            )
        images.append(image)
        labels.append(label)
    sizes = {image.shape for image in images}
    if len(sizes) > 1:
        raise DataError(
            f"{data_root / split}: images of several sizes {sorted(sizes)}; one size per split is expected"
        )
    return np.stack(images), np.stack(labels), names


def colour_mode(images: np.ndarray) -> str:
    """``grey`` when every image of (N, H, W, 3) has three equal channels, else ``colour``: what
    the report shows per row, since a grey row competes without the colour cue."""
    grey = np.array_equal(images[..., 0], images[..., 1]) and np.array_equal(images[..., 0], images[..., 2])
    return "grey" if grey else "colour"


def held_out_count(images: int, fraction: float) -> int:
    """How many of ``images`` training images the validation split takes."""
    return int(round(fraction * images))


def holdout(names: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) indices into ``names``: ``round(fraction * len(names))`` images
    drawn by ``seed`` from the names in sorted order, so the split depends on the names only
    (the same for every input and every training seed). Both index arrays are sorted."""
    count = held_out_count(len(names), fraction)
    if fraction > 0 and not 0 < count < len(names):
        raise ConfigError(
            f"val_fraction {fraction} of {len(names)} training images leaves "
            f"{count} for validation and {len(names) - count} for training"
        )
    order = np.argsort(np.asarray(names, dtype=object), kind="stable")
    chosen = order[np.random.default_rng(seed).permutation(len(names))[:count]]
    held = np.zeros(len(names), bool)
    held[chosen] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


RARE_SHARE = 0.01  # a class below 1% of the labelled training pixels is rare (rare_classes)


def rescale(images: np.ndarray, labels: np.ndarray | None, scale: float):
    """Images (N, H, W, 3) resized by ``scale`` (area averaging), and labels (N, H, W) resized
    to the same size by nearest neighbour (None stays None). ``scale == 1`` returns the inputs."""
    if scale == 1.0 or not len(images):
        return images, labels
    height, width = images.shape[1:3]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # cv2: (w, h)
    small = np.stack([cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in images])
    if labels is None:
        return small, None
    return small, np.stack([cv2.resize(label, size, interpolation=cv2.INTER_NEAREST) for label in labels])


def training_crop(seg, image_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the training crops: ``seg.crop``, else the (scaled) image size rounded up to a
    multiple of 16 (DeepLabV3+'s output stride; the padding is the ignore label)."""
    if seg.crop:
        return tuple(seg.crop)
    return tuple(-(-side // 16) * 16 for side in image_size)


def rare_classes(labels: np.ndarray, share: float = RARE_SHARE) -> list[int]:
    """Classes present in ``labels`` that cover less than ``share`` of the labelled pixels."""
    counts = np.bincount(labels[labels != IGNORE_INDEX].ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
    total = max(int(counts.sum()), 1)
    return [c for c in range(NUM_CLASSES) if 0 < counts[c] < share * total]


class RareClassCrop(A.CropNonEmptyMaskIfExists):
    """albumentations' ``CropNonEmptyMaskIfExists`` around a pixel of one of ``classes``, the
    class drawn uniformly among those the sample holds (so a class with few pixels is as likely
    as one with many); a sample holding none of them is cropped uniformly."""

    def __init__(self, height: int, width: int, classes: list[int], p: float = 1.0):
        super().__init__(height, width, p=p)
        self.classes = list(classes)

    def get_params_dependent_on_data(self, params, data):
        mask = data["mask"]
        present = [c for c in self.classes if np.any(mask == c)]
        chosen = mask == self.py_random.choice(present) if present else np.zeros(mask.shape, bool)
        return super().get_params_dependent_on_data(params, {**data, "mask": chosen.astype(np.uint8)})


def train_transform(
    crop: tuple[int, int],
    scale_range: tuple[float, float],
    rare_fraction: float = 0.0,
    rare: list[int] | None = None,
) -> A.Compose:
    """Random scale, pad (image with the normalisation mean, labels with ignore), random crop,
    horizontal flip: same geometry for image and mask.

    DECISION (ours; not in the paper or the anchor code): with ``rare_fraction`` > 0 that share
    of the crops is taken around a pixel of one ``rare`` class (:class:`RareClassCrop`: the class
    drawn uniformly among the rare classes the sample holds), the rest uniformly. Small painted
    classes of real street scenes (curb, car stop, cone, bump: each under 1% of MFNet's pixels)
    then reach the network in many more crops of a short CPU schedule; drawing the class first
    keeps the thinnest (the curb: 11% of MFNet's rare-class pixels) from being crowded out by the
    larger ones. A sample with no rare pixel is cropped uniformly. Crops as large as the image
    make it a no-op."""
    height, width = crop
    low, high = scale_range
    uniform = A.RandomCrop(height, width)
    if rare_fraction > 0 and rare:
        around_rare = RareClassCrop(height, width, rare)
        if rare_fraction >= 1:
            cropping = around_rare
        else:
            around_rare.p, uniform.p = rare_fraction, 1.0 - rare_fraction
            cropping = A.OneOf([around_rare, uniform], p=1.0)
    else:
        cropping = uniform
    return A.Compose(
        [
            A.RandomScale(scale_limit=(low - 1.0, high - 1.0), p=1.0),
            A.PadIfNeeded(
                height, width, border_mode=cv2.BORDER_CONSTANT, fill=PAD_FILL, fill_mask=IGNORE_INDEX
            ),
            cropping,
            A.HorizontalFlip(p=0.5),
        ]
    )


def loader_workers(configured: int, device: torch.device, cpus: int) -> int:
    """Data-loader worker processes. ``-1`` chooses: none on the CPU, where augmenting a batch
    costs about 1% of a training step on these in-memory splits (pipelines/benchmark.py seg) and
    workers would only take cores from the model; on a GPU all of this process's ``cpus``
    (runtime.device.cpu_share: its share of the CPUs it may use among torchrun ranks and
    ``--jobs`` children) but one, up to 16 (a 16-core node must deliver about 300 augmented
    480x640 samples a second; pipelines/benchmark.py loader measured about 165 per worker, 6 CPU
    ms an image, so 2 workers would do)."""
    if configured >= 0:
        return configured
    if device.type != "cuda":
        return 0
    return max(0, min(16, cpus - 1))


# Workers start by fork where there is one (Linux, macOS's default aside): they share the decoded
# split with the main process instead of receiving a pickled copy, and inherit its one OpenCV
# thread. Python 3.14 makes forkserver the default on Linux, which would copy the split into
# every worker and lose that setting, so the method is named here rather than left to Python.
START_METHOD = "fork" if "fork" in mp.get_all_start_methods() else None


def training_loader(dataset, batch_size: int, sampler, workers: int, pin_memory: bool) -> DataLoader:
    """The training DataLoader of ``dataset``: ``workers`` persistent worker processes started by
    :data:`START_METHOD` (none: the main process augments), whole batches only.

    With workers, OpenCV is set to one thread here, in the main process, before the workers
    fork: they inherit it. Setting it in each worker instead (a ``worker_init_fn``, as before)
    can deadlock the worker when the main process ran OpenCV's thread pool just before the fork
    (as augmenting 480x640 images does): measured here, 4 of 12 such workers never delivered a
    batch. The main process keeps one OpenCV thread afterwards; with workers it only receives
    batches."""
    if workers > 0:
        cv2.setNumThreads(1)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        multiprocessing_context=START_METHOD if workers > 0 else None,
    )


_STATISTICS: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) normalised with ImageNet statistics, on the
    images' device (contiguous). The statistics are copied to a device once, not per batch (a
    copy from host memory would make the step wait)."""
    if images.device not in _STATISTICS:
        _STATISTICS[images.device] = (
            torch.from_numpy(IMAGENET_MEAN).to(images.device),
            torch.from_numpy(IMAGENET_STD).to(images.device),
        )
    mean, std = _STATISTICS[images.device]
    return ((images.float() - mean) / std).movedim(-1, -3).contiguous()


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 numpy (..., H, W, 3) -> normalised float (..., 3, H, W) (:func:`normalise`)."""
    return normalise(torch.from_numpy(np.ascontiguousarray(images)))


class AugmentedSplit(Dataset):
    """In-memory training split of (augmented uint8 (H, W, 3) image, uint8 (H, W) label) samples;
    the training step normalises the images and widens the labels to int64 on its device
    (:func:`normalise`). Call ``set_epoch``
    before each epoch: the epoch sits in shared memory, so persistent worker processes see it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: A.Compose, seed: int):
        self.images, self.labels, self.transform, self.seed = images, labels, transform, seed
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        self.transform.set_random_seed(sample_seed(self.seed, self.epoch, index))
        out = self.transform(image=self.images[index], mask=self.labels[index])
        image, label = (np.ascontiguousarray(out[key]) for key in ("image", "mask"))
        return torch.from_numpy(image), torch.from_numpy(label)
