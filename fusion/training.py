"""One training loop for every learned fusion method: it runs a
:class:`fusion.methods.learned.Recipe`'s phases on the experiment's training pairs
(:mod:`fusion.data`). SSPFusion's two phases are a recipe (fusion/sspfusion/recipe.py) like the
six baselines'.

Per phase: Adam over the phase's parameter groups (betas 0.9, 0.999 unless a group says
otherwise), everything else frozen, each group's lr from ``lr_schedule(lr, epoch in phase)``; a
phase starts with a fresh optimiser. Every epoch seeds its torch randomness from (seed, epoch)
and its crops from (seed, epoch, index), so a resumed run ends with the weights of an
uninterrupted one on the CPU.

The same precision policy for every method (runtime/precision.py, ``runtime.*`` in the config):
the network runs under autocast (bf16 on a GPU that has it natively, fp16 with a GradScaler
otherwise, off on the CPU) and hands back float32, in which the losses are computed
(``autocast_view``); batches are channels_last where that is on and come from pinned memory on
a GPU. Loss terms are summed on the device and read once per epoch (``LossSums``): the step never
waits for the GPU. Under torchrun the loss of a batch is the ``forward`` of one module
(:class:`LossStep`) that DistributedDataParallel wraps, so gradients are averaged in DDP's
buckets whatever model methods the loss calls, and BatchNorm is synchronised over the ranks.

After every epoch the guard of fusion/guard.py checks the network's images of four probe pairs
and stops a collapsed training with an error naming the method and the epoch.

A checkpoint is written atomically after every epoch; ``resume=True`` continues from it.
Outputs: ``model.pt`` (method name, weights and the config section that built them),
``checkpoint.pt``, ``history.csv`` (loss terms, lr, seconds of training steps and seconds outside
them per epoch), ``preview.png`` (infrared | visible | fused for a few training pairs) and
``summary.json`` (parameters, epochs, wall time, final loss, device and precision, the mean
brightness of a few fused training pairs next to the sources': a collapsed network shows there
at once).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from configs.schema import ExperimentConfig, to_dict
from fusion.data import crops, make_loader, training_pairs
from fusion.guard import CollapseGuard, probe_pairs
from fusion.methods import MethodError, entry
from fusion.methods.learned import Phase, Recipe, recipe
from runtime.checkpoints import resume_state, save_checkpoint, save_torch_atomic
from runtime.device import pick_device
from runtime.distributed import barrier, init_distributed, wrap_model
from runtime.files import write_bytes_atomic, write_json_atomic
from runtime.precision import Precision, autocast_view, resolve_precision
from runtime.progress import progress_bar
from runtime.training import LossSums, amp_step, epoch_seed, history_seconds, show_progress, write_history


class LossStep(nn.Module):
    """One batch's loss as a phase computes it, as the ``forward`` of a module holding the
    network: what DistributedDataParallel wraps, so its gradient hooks see every parameter the
    loss reaches, through ``model(...)`` or any other method of the model."""

    def __init__(self, model: nn.Module, phase: Phase, precision: Precision, device: torch.device):
        super().__init__()
        self.model, self.phase, self.precision, self.device = model, phase, precision, device

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return self.phase.loss(autocast_view(self.model, self.precision, self.device), ir, vi)


def phase_at(phases: list[Phase], epoch: int) -> tuple[int, int]:
    """(phase index, epoch within that phase) of a global epoch number."""
    for index, phase in enumerate(phases):
        if epoch < phase.epochs:
            return index, epoch
        epoch -= phase.epochs
    raise IndexError("epoch past the last phase")


def start_phase(model: nn.Module, phase: Phase) -> torch.optim.Adam:
    """Freeze what the phase does not train; a fresh Adam over its groups."""
    groups = phase.param_groups(model)
    training = {id(p) for group in groups for p in group["params"]}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in training)
    for group in groups:
        group["initial_lr"] = group["lr"]
    return torch.optim.Adam(groups, betas=(0.9, 0.999))


def run_epoch(net, batches, optimizer, scaler, precision: Precision, device, first_step=None) -> LossSums:
    """One pass over the loader: this rank's loss terms, summed on the device. ``first_step(loss,
    terms)``, when given, sees the first step's loss before it is applied (it may wait for the
    device: the loop gives it once a run)."""
    sums, seen, tick = LossSums(device), 0, time.perf_counter()
    for step, (ir, vi) in enumerate(batches, 1):
        ir = precision.memory_format(ir.to(device, non_blocking=precision.pin_memory))
        vi = precision.memory_format(vi.to(device, non_blocking=precision.pin_memory))
        loss, terms = net(ir, vi)
        if step == 1 and first_step is not None:
            first_step(loss, terms)
        amp_step(loss, optimizer, scaler)
        sums.add(terms, len(ir))
        seen += len(ir)
        show_progress(batches, sums, step, seen, tick)
    return sums


@torch.no_grad()
def check_network(method: Recipe, model: nn.Module, ir: torch.Tensor, vi: torch.Tensor, where: str) -> None:
    """Before the first step: the network fuses (B, 1, H, W) luminance in [0, 1] into one image
    of the same shape, finite and about in [0, 1] (within [-0.5, 1.5]: an untrained network may
    stray a little; a network on another scale, 0-255 or -1..1, is refused)."""
    model.eval()
    try:
        fused = method.fuse(model, ir, vi)
    except Exception as error:
        raise MethodError(f"{where}: fusing a pair of {tuple(ir.shape)} crops failed: {error}") from error
    if not isinstance(fused, torch.Tensor) or fused.shape != ir.shape:
        shape = tuple(fused.shape) if isinstance(fused, torch.Tensor) else type(fused).__name__
        raise MethodError(
            f"{where}: fuses {tuple(ir.shape)} infrared and visible into {shape}, not {tuple(ir.shape)}"
        )
    if not bool(torch.isfinite(fused).all()):
        raise MethodError(f"{where}: its fused image holds NaN or infinite values before training")
    low, high = float(fused.min()), float(fused.max())
    if low < -0.5 or high > 1.5:
        raise MethodError(
            f"{where}: its fused luminance spans [{low:.3g}, {high:.3g}]; it must be in [0, 1] as "
            "its inputs are"
        )


def require_finite(terms: dict, what: str, when: str) -> None:
    """A MethodError naming ``what`` when a loss term is NaN or infinite."""
    values = {key: float(value.detach() if torch.is_tensor(value) else value) for key, value in terms.items()}
    if not all(np.isfinite(list(values.values()))):
        shown = ", ".join(f"{key}={value:.4g}" for key, value in values.items())
        raise MethodError(f"{what} is not finite {when} ({shown})")


@torch.no_grad()
def probe_images(method: Recipe, model, phase: Phase, ir, vi) -> tuple[torch.Tensor, str]:
    """The images of the phase the guard checks (eval mode): fused, or reconstructed."""
    model.eval()
    if phase.reconstruct is None:
        return method.fuse(model, ir, vi), "fused images"
    return phase.reconstruct(model, torch.cat([ir, vi])), "reconstructions"


@torch.no_grad()
def fused_examples(method: Recipe, model, irs, vis, device, count: int = 4) -> list[tuple]:
    """(infrared, visible Y, fused in [0, 1]) of the first ``count`` training pairs at full
    size, fused once for the summary's brightness and the preview."""
    model.eval()
    to = lambda a: torch.tensor(a, dtype=torch.float32, device=device).div(255)[None, None]  # noqa: E731
    return [
        (ir, vi, method.fuse(model, to(ir), to(vi)).clamp(0, 1)[0, 0].float().cpu().numpy())
        for ir, vi in list(zip(irs, vis, strict=True))[:count]
    ]


def fused_brightness(examples: list[tuple]) -> dict:
    """Mean of the fused and of the source luminance (0-255) over the examples."""
    count = len(examples)
    return {
        "fused": round(sum(float(fused.mean()) * 255 for _, _, fused in examples) / count, 1),
        "infrared": round(float(sum(ir.mean() for ir, _, _ in examples) / count), 1),
        "visible": round(float(sum(vi.mean() for _, vi, _ in examples) / count), 1),
    }


def preview(examples: list[tuple]) -> bytes:
    """Infrared | visible Y | fused for the examples, as one PNG."""
    rows = [
        np.concatenate([ir, vi, np.round(fused * 255).astype(np.uint8)], axis=1) for ir, vi, fused in examples
    ]
    width = max(row.shape[1] for row in rows)
    panel = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]))) for r in rows], axis=0)
    buffer = io.BytesIO()
    Image.fromarray(panel).save(buffer, format="PNG")
    return buffer.getvalue()


def train(
    name: str,
    config: ExperimentConfig,
    data_root: Path,
    out_dir: Path,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    identity: str | None = None,
) -> dict:
    """Train the learned method ``name`` with its recipe and its config section; write its files
    into ``out_dir``. ``stop_after`` ends after that many epochs (the next call with
    ``resume=True`` continues). ``identity`` (the stage identity of pipelines/engine) is stored
    in the checkpoint; only a checkpoint of the same identity is resumed. Returns a summary."""
    method = recipe(name)
    section = getattr(config, method.config_section)
    out_dir = Path(out_dir)
    device, place = init_distributed(pick_device(config.runtime.device))
    precision = resolve_precision(config.runtime, device)
    names, irs, vis = training_pairs(data_root, config.fusion.max_pairs)
    phases = [phase for phase in method.phases(section) if phase.epochs > 0]
    total_epochs = sum(phase.epochs for phase in phases)
    probe = [images.to(device) for images in probe_pairs(irs, vis)]

    torch.manual_seed(config.seed)
    model = method.build_model(section).to(device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    start, history = 0, []
    checkpoint_path = out_dir / "checkpoint.pt"
    state = resume_state(checkpoint_path, resume, device, identity)
    if state is not None:
        model.load_state_dict(state["model"])
        start, history = state["epoch"], state["history"]
    last = total_epochs if stop_after is None else min(total_epochs, stop_after)
    where = f"{method.title} ({entry(name).origin})"
    if start == 0:
        check_network(method, model, *probe, where)

    def check_first_step(loss: torch.Tensor, terms: dict) -> None:
        require_finite({"loss": loss, **terms}, f"{where}: its loss", "at the first step")

    guard = CollapseGuard(
        method.title,
        probe,
        keep_evidence=lambda: write_history(out_dir, history, place),
        warmup_steps=method.guard_warmup_steps,
    )
    scaler = precision.make_scaler(device)
    current, optimizer, dataset, net = None, None, None, None
    for epoch in range(start, last):
        index, epoch_in_phase = phase_at(phases, epoch)
        phase = phases[index]
        if index != current:
            current = index
            if epoch_in_phase == 0 and phase.begin is not None:
                phase.begin(model)
            optimizer = start_phase(model, phase)
            if state is not None and state["phase"] == phase.name and epoch == start:
                optimizer.load_state_dict(state["optimizer"])
            dataset = crops(phase.augment, irs, vis, phase.crop_size, config.seed)
            net = wrap_model(LossStep(model, phase, precision, device), device, place, sync_batchnorm=True)
        for group in optimizer.param_groups:
            group["lr"] = phase.lr_schedule(group["initial_lr"], epoch_in_phase)
        torch.manual_seed(epoch_seed(config.seed, epoch))
        loader = make_loader(dataset, phase.batch_size, place, config.seed, epoch, precision.pin_memory)
        model.train()
        tick = time.perf_counter()
        bar = progress_bar(
            loader,
            f"{method.title} {phase.name} epoch {epoch + 1}/{total_epochs}",
            progress and place.is_main,
            lr=optimizer.param_groups[0]["lr"],
        )
        first = check_first_step if epoch == start else None  # once a run: it waits for the device
        means = run_epoch(net, bar, optimizer, scaler, precision, device, first).means(place)
        require_finite(means, f"{where}: its loss", f"in epoch {epoch + 1}")
        stepped = time.perf_counter()
        images, what = probe_images(method, model, phase, *probe)
        steps = (epoch_in_phase + 1) * len(loader)  # loaders of one phase are of one length
        row = {"epoch": epoch + 1, "phase": phase.name, "lr": optimizer.param_groups[0]["lr"], **means}
        row["seconds"] = round(stepped - tick, 2)
        row["outside_seconds"] = round(time.perf_counter() - stepped, 2)  # the guard's probe images
        history.append(row)
        guard.check(epoch + 1, phase.name, what, images, last=epoch + 1 == total_epochs, steps=steps)
        checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1}
        checkpoint |= {"phase": phase.name, "history": history, "identity": identity}
        save_checkpoint(checkpoint_path, checkpoint, place)
    if last < total_epochs:
        return {"stopped_after_epoch": last}

    examples = fused_examples(method, model, irs, vis, device)
    summary = {
        "method": name,
        "parameters": method.count_parameters(model),
        "paper_parameters": method.paper_parameters,
        "epochs": total_epochs,
        "train_pairs": len(names),
        "identity": identity,
        "seed": config.seed,
        "device": str(device),
        "precision": precision.name,
        "wall_seconds": round(history_seconds(history), 1),
        "final_loss": history[-1]["total"] if history else None,
        "brightness": fused_brightness(examples),
        "processes": place.world_size,
    }
    if place.is_main:
        write_bytes_atomic(out_dir / "preview.png", preview(examples))
        saved = {"method": name, "model": model.state_dict(), "config": to_dict(section)}
        save_torch_atomic(out_dir / "model.pt", saved)
        write_history(out_dir, history, place)
        write_json_atomic(out_dir / "summary.json", summary)
    barrier(place)
    return summary
