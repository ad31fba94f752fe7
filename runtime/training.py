"""The training shell both trainers share (segmentation/train.py, fusion/sspfusion/train.py), and
the step the benchmark times bare: each trainer keeps only its recipe (data, model, phases,
learning rate, loss) and calls these for the rest.

- ``amp_step``: the optimizer step under mixed precision (GradScaler; a no-op scaler on CPU/bf16);
- ``begin_epoch``: the epoch's learning rate on every parameter group and one seed recipe for
  the epoch's torch randomness (dropout), so a resumed run repeats an uninterrupted one;
- ``epoch_means``: per-rank loss sums -> means over every rank's images;
- ``write_history``: the per-epoch rows as ``history.csv``.

The checkpoint each trainer writes after every epoch and reads on resume is
:mod:`runtime.checkpoints`' business. No model code of the project is imported.
"""

from __future__ import annotations

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


def epoch_means(sums: dict[str, float], images: int, device: torch.device, place: Dist) -> dict[str, float]:
    """This rank's summed (per-image weighted) losses -> means over the images of every rank."""
    keys = sorted(sums)
    totals = all_reduce_sum(
        torch.tensor([sums[k] for k in keys] + [images], dtype=torch.float64, device=device), place
    ).tolist()
    return {key: value / totals[-1] for key, value in zip(keys, totals[:-1], strict=True)}


def write_history(out_dir: Path, history: list[dict], place: Dist) -> None:
    """The per-epoch rows as ``history.csv`` in ``out_dir`` (main process only)."""
    if place.is_main:
        import pandas as pd

        write_text_atomic(Path(out_dir) / "history.csv", pd.DataFrame(history).to_csv(index=False))


__all__ = ["amp_step", "epoch_seed", "sample_seed", "begin_epoch", "epoch_means", "write_history"]
