"""The training shell both trainers share (segmentation/train.py, fusion/sspfusion/train.py), and
the step the benchmark times bare: each trainer keeps only its recipe (data, model, phases,
learning rate, loss) and calls these for the rest.

- ``amp_step``: the optimizer step under mixed precision (GradScaler; a no-op scaler on CPU/bf16);
- ``begin_epoch``: the epoch's learning rate on every parameter group and one seed recipe for
  the epoch's torch randomness (dropout), so a resumed run repeats an uninterrupted one;
- ``epoch_means``: per-rank loss sums -> means over every rank's images;
- ``resume_state`` / ``save_checkpoint``: the checkpoint read on resume, written atomically by
  rank 0 after every epoch, followed by a barrier.

Only torch and the configuration layer are imported (no model code of the project).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from configs.distributed import Dist, all_reduce_sum, barrier
from configs.runtime import load_checkpoint, save_torch_atomic, write_text_atomic


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


def resume_state(path: Path, resume: bool, device: torch.device, identity: str | None = None) -> dict | None:
    """The checkpoint at ``path`` when resuming and it exists, else None. A checkpoint written
    under another stage ``identity`` is refused (ValueError naming the file)."""
    state = load_checkpoint(path, device) if resume and Path(path).is_file() else None
    if state is not None and state.get("identity") != identity:
        raise ValueError(
            f"{path}: written by a run of identity {state.get('identity')}, "
            f"not {identity}; move it aside to restart"
        )
    return state


def save_checkpoint(path: Path, state: dict, place: Dist) -> None:
    """Rank 0 writes ``state`` atomically; every rank waits for it."""
    if place.is_main:
        save_torch_atomic(path, state)
    barrier(place)


__all__ = ["amp_step", "epoch_seed", "begin_epoch", "epoch_means", "resume_state", "save_checkpoint"]


def write_history(out_dir: Path, history: list[dict], place: Dist) -> None:
    """The per-epoch rows as ``history.csv`` in ``out_dir`` (main process only)."""
    if place.is_main:
        import pandas as pd

        write_text_atomic(Path(out_dir) / "history.csv", pd.DataFrame(history).to_csv(index=False))
