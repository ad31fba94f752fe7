"""The training data of every learned fusion method: the training pairs of a data root as
luminance, held in memory, and the crops a training phase draws from them.

Pairs are decoded once (uint8); every crop is drawn from (seed, epoch, index), so a resumed run
sees the batches an uninterrupted one would, and so does a torchrun run with any number of
processes: the sampler is a ``DistributedSampler`` over one seeded permutation
(runtime/distributed.py). Crops are cheap slices of in-memory arrays, so the main process makes
them (no loader workers).
"""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from fusion.colour import luminance
from msrs.layout import DataError, list_split, training_splits
from runtime.distributed import Dist, per_rank_batch
from runtime.training import sample_seed


def training_pairs(data_root: Path, max_pairs: int | None = None) -> tuple[list[str], list, list]:
    """(names, infrared uint8 (H, W) list, visible luminance uint8 (H, W) list) of the training
    pairs of a data root (``msrs.layout.training_splits``: MSRS's train split, MFNet's train and
    val lists, or a whole ``ir/`` + ``vi/`` folder; never a test pair), sorted by name within
    each split. Sizes may differ between pairs."""
    data_root = Path(data_root)
    pairs = [
        pair for split in training_splits(data_root) for pair in list_split(data_root, split, labels=False)
    ]
    pairs = pairs[:max_pairs] if max_pairs else pairs
    if not pairs:
        raise DataError(f"{data_root}: no training pairs")
    irs, vis = [], []
    for pair in pairs:
        ir, vi = pair.read_ir(), luminance(pair.read_vi())
        if ir.shape != vi.shape:
            raise DataError(
                f"{pair.ir}: infrared is {ir.shape[1]}x{ir.shape[0]} but {pair.vi} is "
                f"{vi.shape[1]}x{vi.shape[0]} (width x height)"
            )
        irs.append(ir)
        vis.append(vi)
    return [p.name for p in pairs], irs, vis


class FusionCrops(Dataset):
    """Random square crops (reflect-padded when an image is smaller) and horizontal flips of the
    in-memory pairs, drawn from (seed, epoch, index). Items: two (1, c, c) float tensors in [0, 1]."""

    def __init__(self, irs: list[np.ndarray], vis: list[np.ndarray], crop: int, seed: int):
        self.irs, self.vis, self.crop, self.seed, self.epoch = irs, vis, crop, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.irs)

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        pair = np.stack([self.irs[index], self.vis[index]])
        height, width = pair.shape[1:]
        pad_h, pad_w = max(self.crop - height, 0), max(self.crop - width, 0)
        if pad_h or pad_w:
            pair = np.pad(pair, ((0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
        top = rng.integers(0, pair.shape[1] - self.crop + 1)
        left = rng.integers(0, pair.shape[2] - self.crop + 1)
        pair = pair[:, top : top + self.crop, left : left + self.crop]
        if rng.random() < 0.5:
            pair = pair[:, :, ::-1]
        tensor = torch.from_numpy(np.ascontiguousarray(pair)).float().div_(255.0)
        return tensor[0:1], tensor[1:2]


class ResizedCrops(Dataset):
    """torchvision's ``RandomResizedCrop`` (area 8-100 %, aspect 3/4-4/3) of each image of a pair
    on its own, resized to ``crop`` x ``crop``: AUIF's authors' augmentation (no flips). Drawn
    through albumentations from (seed, epoch, index); items as :class:`FusionCrops`'.

    DECISION (ours): downscaling uses area interpolation (``area_for_downscale``), the nearest
    cv2 has to the antialiased bilinear resize torchvision applies to the authors' PIL images.
    """

    def __init__(self, irs: list[np.ndarray], vis: list[np.ndarray], crop: int, seed: int):
        self.irs, self.vis, self.seed, self.epoch = irs, vis, seed, 0
        self.transform = A.RandomResizedCrop(size=(crop, crop), area_for_downscale="image")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.irs)

    def __getitem__(self, index: int):
        self.transform.set_random_seed(sample_seed(self.seed, self.epoch, index))
        ir, vi = (self.transform(image=image)["image"] for image in (self.irs[index], self.vis[index]))
        to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float().div_(255.0)[None]  # noqa: E731
        return to(ir), to(vi)


# how a phase draws its crops (fusion.methods.learned.Phase.augment)
CROPS: dict[str, type[Dataset]] = {"crop": FusionCrops, "resized_crop": ResizedCrops}


def crops(augment: str, irs: list[np.ndarray], vis: list[np.ndarray], crop: int, seed: int) -> Dataset:
    """The crops a phase's ``augment`` names (:data:`CROPS`)."""
    if augment not in CROPS:
        raise ValueError(f"unknown augment '{augment}' (valid: {', '.join(CROPS)})")
    return CROPS[augment](irs, vis, crop, seed)


def make_loader(
    dataset, batch: int, place: Dist, seed: int, epoch: int, pin_memory: bool = False
) -> DataLoader:
    """One epoch's batches of ``dataset`` (global batch ``batch``, this rank's share of it)."""
    sampler = DistributedSampler(
        dataset, num_replicas=place.world_size, rank=place.rank, shuffle=True, seed=seed
    )
    sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_size=per_rank_batch(batch, place),
        sampler=sampler,
        drop_last=len(dataset) >= batch,
        num_workers=0,
        pin_memory=pin_memory,
    )
