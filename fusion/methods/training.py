"""One training loop for the learned baselines (DIDFuse, AUIF, RFN-Nest): it runs a
:class:`fusion.methods.learned.Recipe`'s phases on the experiment's training pairs.

The data are SSPFusion's (fusion/sspfusion/train.py): the training pairs of an MSRS root (or an
``ir/ vi/`` folder) as luminance, crops drawn from (seed, epoch, index) as a phase's ``augment``
says (:data:`CROPS`: random square crops with horizontal flips, or RandomResizedCrop), the same
sampler under torchrun (where gradients are averaged over processes after
every backward, :func:`average_gradients`: the losses call the model's own methods, not only
``forward``, so DistributedDataParallel's hooks would miss some). Per phase: Adam (betas 0.9,
0.999) over the phase's parameter groups, everything else frozen, lr = group lr x
``lr_factor(epoch in phase)``; a phase starts with a fresh optimiser.

After every epoch the guard of fusion/guard.py checks the network's images of four probe pairs
and stops a collapsed training with an error naming the method and the epoch.

A checkpoint is written atomically after every epoch; ``resume=True`` continues from it.
Outputs: ``model.pt`` (method name, weights and the config section that built them),
``checkpoint.pt``, ``history.csv`` (loss terms, lr, seconds per epoch) and ``summary.json``
(parameters, epochs, wall time, final loss, the mean brightness of a few fused training pairs
next to the sources': a collapsed network shows there at once).
"""

from __future__ import annotations

import time
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from configs.schema import ExperimentConfig, to_dict
from fusion.guard import CollapseGuard, probe_pairs
from fusion.methods.learned import Phase, count_parameters, recipe
from fusion.sspfusion.train import FusionCrops, make_loader, training_pairs
from runtime.checkpoints import resume_state, save_checkpoint, save_torch_atomic
from runtime.device import pick_device
from runtime.distributed import Dist, all_reduce_sum, barrier, init_distributed
from runtime.files import write_json_atomic
from runtime.progress import progress_bar
from runtime.training import epoch_means, epoch_seed, sample_seed, write_history


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


# how a phase draws its crops (Phase.augment)
CROPS: dict[str, type[Dataset]] = {"crop": FusionCrops, "resized_crop": ResizedCrops}


def phase_at(phases: list[Phase], epoch: int) -> tuple[int, int]:
    """(phase index, epoch within that phase) of a global epoch number."""
    for index, phase in enumerate(phases):
        if epoch < phase.epochs:
            return index, epoch
        epoch -= phase.epochs
    raise IndexError("epoch past the last phase")


def start_phase(model: torch.nn.Module, phase: Phase) -> torch.optim.Adam:
    """Freeze what the phase does not train; a fresh Adam over its groups."""
    groups = phase.param_groups(model)
    training = {id(p) for group in groups for p in group["params"]}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in training)
    for group in groups:
        group["initial_lr"] = group["lr"]
    return torch.optim.Adam(groups, betas=(0.9, 0.999))


def average_gradients(model: torch.nn.Module, place: Dist) -> None:
    """Mean of every gradient over the processes (no-op in one process)."""
    if place.enabled:
        for parameter in model.parameters():
            if parameter.grad is not None:
                all_reduce_sum(parameter.grad, place).div_(place.world_size)


def run_epoch(model, batches, optimizer, phase: Phase, device, place: Dist) -> dict:
    """One pass over the loader; summed loss terms of this rank and ``images`` (pairs) seen."""
    sums: dict[str, float] = {}
    seen = 0
    for ir, vi in batches:
        ir, vi = ir.to(device), vi.to(device)
        loss, terms = phase.loss(model, ir, vi)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(model, place)
        optimizer.step()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + float(value) * len(ir)
        seen += len(ir)
        if hasattr(batches, "set_postfix"):
            batches.set_postfix({name: f"{value / seen:.3f}" for name, value in sums.items()})
    return {**sums, "images": seen}


@torch.no_grad()
def probe_images(model, phase: Phase, ir: torch.Tensor, vi: torch.Tensor) -> tuple[torch.Tensor, str]:
    """The images of the phase the guard checks (eval mode): fused, or reconstructed."""
    model.eval()
    if phase.reconstruct is None:
        return model.fuse(ir, vi), "fused images"
    return phase.reconstruct(model, torch.cat([ir, vi])), "reconstructions"


@torch.no_grad()
def fused_brightness(model, irs, vis, device, count: int = 4) -> dict:
    """Mean of the fused and of the source luminance (0-255) over the first ``count`` pairs."""
    model.eval()
    to = lambda a: torch.tensor(a, dtype=torch.float32, device=device).div(255)[None, None]  # noqa: E731
    pairs = list(zip(irs, vis, strict=True))[:count]
    fused = [float(model.fuse(to(ir), to(vi)).clamp(0, 1).mean()) * 255 for ir, vi in pairs]
    return {
        "fused": round(sum(fused) / len(fused), 1),
        "infrared": round(float(sum(ir.mean() for ir, _ in pairs) / len(pairs)), 1),
        "visible": round(float(sum(vi.mean() for _, vi in pairs) / len(pairs)), 1),
    }


def train_learned(
    name: str,
    config: ExperimentConfig,
    data_root: Path,
    out_dir: Path,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    identity: str | None = None,
) -> dict:
    """Train the learned baseline ``name`` with its recipe and the ``config.<name>`` section;
    write its files into ``out_dir``. ``stop_after`` ends after that many epochs (the next call
    with ``resume=True`` continues). ``identity`` (the stage identity of pipelines/engine) is
    stored in the checkpoint; only a checkpoint of the same identity is resumed. Returns a
    summary."""
    method, section = recipe(name), getattr(config, name)
    out_dir = Path(out_dir)
    device, place = init_distributed(pick_device(config.runtime.device))
    names, irs, vis = training_pairs(data_root, config.fusion.max_pairs)
    phases = [phase for phase in method.phases(section) if phase.epochs > 0]
    total_epochs = sum(phase.epochs for phase in phases)
    probe = [images.to(device) for images in probe_pairs(irs, vis)]

    torch.manual_seed(config.seed)
    model = method.build_model(section).to(device)
    start, history = 0, []
    checkpoint_path = out_dir / "checkpoint.pt"
    state = resume_state(checkpoint_path, resume, device, identity)
    if state is not None:
        model.load_state_dict(state["model"])
        start, history = state["epoch"], state["history"]
    last = total_epochs if stop_after is None else min(total_epochs, stop_after)
    guard = CollapseGuard(
        method.title,
        probe,
        keep_evidence=lambda: write_history(out_dir, history, place),
        warmup_steps=method.guard_warmup_steps,
    )
    current, optimizer, dataset = None, None, None
    for epoch in range(start, last):
        index, epoch_in_phase = phase_at(phases, epoch)
        phase = phases[index]
        if index != current:
            current = index
            optimizer = start_phase(model, phase)
            if state is not None and state["phase"] == phase.name and epoch == start:
                optimizer.load_state_dict(state["optimizer"])
            if phase.augment not in CROPS:
                raise ValueError(f"unknown augment '{phase.augment}' (valid: {', '.join(CROPS)})")
            dataset = CROPS[phase.augment](irs, vis, phase.crop_size, config.seed)
        factor = phase.lr_factor(epoch_in_phase)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        torch.manual_seed(epoch_seed(config.seed, epoch))
        loader = make_loader(dataset, phase.batch_size, place, config.seed, epoch)
        model.train()
        tick = time.perf_counter()
        bar = progress_bar(
            loader,
            f"{method.title} {phase.name} epoch {epoch + 1}/{total_epochs}",
            progress and place.is_main,
            lr=optimizer.param_groups[0]["lr"],
        )
        sums = run_epoch(model, bar, optimizer, phase, device, place)
        images = sums.pop("images")
        history.append(
            {
                "epoch": epoch + 1,
                "phase": phase.name,
                "lr": optimizer.param_groups[0]["lr"],
                **epoch_means(sums, images, device, place),
                "seconds": round(time.perf_counter() - tick, 2),
            }
        )
        images, what = probe_images(model, phase, *probe)
        steps = (epoch_in_phase + 1) * len(loader)  # loaders of one phase are of one length
        guard.check(epoch + 1, phase.name, what, images, last=epoch + 1 == total_epochs, steps=steps)
        save_checkpoint(
            checkpoint_path,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "phase": phase.name,
                "history": history,
                "identity": identity,
            },
            place,
        )
    if last < total_epochs:
        return {"stopped_after_epoch": last}

    summary = {
        "method": name,
        "parameters": count_parameters(model),
        "paper_parameters": method.paper_parameters,
        "epochs": total_epochs,
        "train_pairs": len(names),
        "identity": identity,
        "seed": config.seed,
        "wall_seconds": round(sum(row["seconds"] for row in history), 1),
        "final_loss": history[-1]["total"] if history else None,
        "brightness": fused_brightness(model, irs, vis, device),
        "processes": place.world_size,
    }
    if place.is_main:
        save_torch_atomic(
            out_dir / "model.pt", {"method": name, "model": model.state_dict(), "config": to_dict(section)}
        )
        write_history(out_dir, history, place)
        write_json_atomic(out_dir / "summary.json", summary)
    barrier(place)
    return summary
