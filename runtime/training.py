"""The training shell both trainers share (segmentation/train.py, fusion/training.py), and
the step the benchmark times bare: each trainer keeps only its recipe (data, model, phases,
learning rate, loss) and calls these for the rest.

- ``amp_step``: the optimizer step under mixed precision (GradScaler; a no-op scaler on CPU/bf16);
- ``begin_epoch``: the epoch's learning rate on every parameter group and one seed recipe for
  the epoch's torch randomness (dropout), so a resumed run repeats an uninterrupted one;
- ``LossSums``: an epoch's loss terms summed on the device, read once when the epoch ends (the
  step never waits for the GPU), as means over every rank's images;
- ``write_history``: the per-epoch rows as ``history.csv``.

The checkpoint each trainer writes after every epoch and reads on resume is
:mod:`runtime.checkpoints`' business. No model code of the project is imported.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from runtime.distributed import Dist, all_reduce_sum
from runtime.files import write_text_atomic


def amp_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler) -> None:
    """Backward and optimizer step through the precision's GradScaler."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, 7]).generate_state(1)[0])


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one training sample's augmentation, drawn from (seed, epoch, index)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def begin_epoch(optimizer: torch.optim.Optimizer, lr: float, seed: int, epoch: int) -> None:
    """Set ``lr`` on every parameter group and seed torch's generator from (seed, epoch)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    torch.manual_seed(epoch_seed(seed, epoch))


class LossSums:
    """One epoch's loss terms, each summed over images in float64 on the device: ``add`` queues
    the additions without reading a value back (no host-device synchronisation in the step);
    ``means`` reads them once, summed over the ranks."""

    def __init__(self, device: torch.device):
        self.device, self.sums, self.images = device, {}, 0

    def add(self, terms: dict[str, torch.Tensor], images: int) -> None:
        """Add a batch's mean terms (0-d tensors), weighted by its ``images``."""
        for name, value in terms.items():
            weighted = value.detach().double() * images
            self.sums[name] = self.sums[name] + weighted if name in self.sums else weighted
        self.images += images

    def shown(self) -> dict[str, str]:
        """This rank's means so far, formatted for a progress line (reads the device: call it
        once an epoch, after its last step)."""
        keys = sorted(self.sums)
        values = torch.stack([self.sums[key] for key in keys]).tolist() if keys else []
        return {key: f"{value / max(self.images, 1):.3f}" for key, value in zip(keys, values, strict=True)}

    def means(self, place: Dist) -> dict[str, float]:
        """Per-image means over the images of every rank (one transfer to the host)."""
        keys = sorted(self.sums)
        values = [self.sums[key].reshape(1) for key in keys]
        count = torch.tensor([self.images], dtype=torch.float64, device=self.device)
        totals = all_reduce_sum(torch.cat([*values, count]), place).tolist()
        return {key: value / totals[-1] for key, value in zip(keys, totals[:-1], strict=True)}


def show_progress(batches, sums: LossSums, step: int, seen: int, tick: float) -> None:
    """Images per second on the progress bar after every step (host-side counts only), and the
    epoch's loss terms after its last step (``LossSums.shown``: the one read of the device)."""
    if not hasattr(batches, "set_postfix"):
        return
    shown = sums.shown() if step == len(batches) else {}
    batches.set_postfix(shown | {"img_s": f"{seen / (time.perf_counter() - tick):.1f}"})


def history_seconds(history: list[dict]) -> float:
    """Wall time of the epochs in ``history`` (earlier, interrupted sessions included): their
    training steps (``seconds``) and what ran outside them (``outside_seconds``)."""
    return sum(row["seconds"] + row.get("outside_seconds", 0) for row in history)


def write_history(out_dir: Path, history: list[dict], place: Dist) -> None:
    """The per-epoch rows as ``history.csv`` in ``out_dir`` (main process only)."""
    if place.is_main:
        import pandas as pd

        write_text_atomic(Path(out_dir) / "history.csv", pd.DataFrame(history).to_csv(index=False))


__all__ = [
    "LossSums",
    "amp_step",
    "begin_epoch",
    "epoch_seed",
    "sample_seed",
    "show_progress",
    "write_history",
]
