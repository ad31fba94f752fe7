"""Two-phase SSPFusion training (paper 4.1) on the training pairs of an MSRS root, or on any
folder holding ``ir/`` and ``vi/`` (RoadScene layout).

Recipe, all values from ``FusionConfig``: Adam (betas 0.9, 0.999), lr 2e-4 with cosine decay,
random ``crop_size`` square crops (plus horizontal flips), batch ``batch_size``.

- Phase 1, ``structure_epochs``: the structure maps and an auto-encoder path learn
  (``losses.total_loss(..., phase="structure")``).
- Phase 2, ``fusion_epochs``: the full eq. 9.

DECISION (the paper gives one lr and "cosine decay" without saying over what): each phase gets a
fresh Adam and its own cosine from ``lr`` down to ``lr / 100``, as two separate trainings in the
style of Li et al. (2021), which the paper cites for the two-stage scheme. The ablation "w/o F"
(``use_sfe`` off) runs the same two phases with L_str and L_rec left out (losses.total_loss).
With ``frozen_targets`` the SFE is copied when phase 2 starts and S^{k,gt} comes from that copy.

Losses run in float32 outside autocast (``FusionOutput.float``). After every epoch the guard
every learned method shares (fusion/guard.py) checks the phase's images of four probe pairs
(phase 1: the reconstructions; phase 2: the fused images) and raises
:class:`fusion.guard.FusionCollapseError` when they are saturated, black or flat, instead of
writing a model that fuses to useless images.

Images enter as luminance: infrared as it is, visible through BT.601 Y (fusion/colour.py). The
pairs are decoded once and held in memory as uint8; every crop is drawn from (seed, epoch, index),
so a resumed run sees the batches an uninterrupted one would, and so does a torchrun run with any
number of processes (runtime/distributed.py).

A checkpoint is written atomically after every epoch; ``resume=True`` continues from it. Outputs:
``model.pt`` (weights + the FusionConfig that built them), ``checkpoint.pt``, ``history.csv``
(loss terms, lr, seconds per epoch) and ``preview.png`` (a few fused training images).
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from configs.schema import ExperimentConfig, FusionConfig, to_dict
from fusion.colour import luminance
from fusion.guard import CollapseGuard, probe_pairs
from fusion.sspfusion.losses import total_loss
from fusion.sspfusion.model import SSPFusion, count_parameters
from msrs.layout import DataError, list_split, training_splits
from runtime.checkpoints import load_checkpoint, resume_state, save_checkpoint, save_torch_atomic
from runtime.device import pick_device
from runtime.distributed import Dist, barrier, init_distributed, per_rank_batch, unwrap, wrap_model
from runtime.files import write_bytes_atomic, write_json_atomic
from runtime.precision import resolve_precision
from runtime.progress import progress_bar
from runtime.training import amp_step, begin_epoch, epoch_means, write_history


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


def make_loader(
    dataset: FusionCrops, batch: int, place: Dist, seed: int, epoch: int, pin_memory: bool = False
) -> DataLoader:
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


def fusion_loader(
    config: ExperimentConfig, data_root: Path, seed: int, place: Dist, epoch: int, pin_memory: bool = False
) -> DataLoader:
    """The training loader of one epoch, built from scratch (benchmarks; training reuses one
    dataset)."""
    _, irs, vis = training_pairs(data_root, config.fusion.max_pairs)
    dataset = FusionCrops(irs, vis, config.fusion.crop_size, seed)
    return make_loader(dataset, config.fusion.batch_size, place, seed, epoch, pin_memory)


def phase_of(config: FusionConfig, epoch: int) -> str:
    return "structure" if epoch < structure_epochs(config) else "fusion"


def structure_epochs(config: FusionConfig) -> int:
    return config.structure_epochs


def learning_rate(config: FusionConfig, epoch: int) -> float:
    """Cosine from lr to lr / 100 within each phase (see the module docstring)."""
    first = structure_epochs(config)
    start, length = (0, first) if epoch < first else (first, config.fusion_epochs)
    progress = (epoch - start) / max(length, 1)
    low = config.lr / 100
    return low + 0.5 * (config.lr - low) * (1 + math.cos(math.pi * progress))


def set_phase_trainable(model: SSPFusion, phase: str) -> None:
    """Stage "structure" trains the SFEs and the decoder (L_str, L_rec, L_ae); the fusion
    convolutions take no part in its loss, so they are frozen then rather than left without a
    gradient (which DistributedDataParallel rejects). Stage "fusion" trains everything."""
    for parameter in model.fuse.parameters():
        parameter.requires_grad_(phase != "structure")


def phase_images(output, phase: str) -> torch.Tensor:
    """The image output a phase trains: the reconstructions (phase 1) or the fused images."""
    if phase == "structure":
        return torch.cat([output.reconstruction_ir, output.reconstruction_vi])
    return output.fused


def train_fusion_epoch(
    net, batches, optimizer, scaler, precision, device, config: FusionConfig, phase: str
) -> dict:
    """One pass; returns summed loss terms of this rank, ``images`` seen and ``brightness``
    (summed mean of the phase's output images)."""
    sums: dict[str, float] = {"brightness": 0.0}
    seen, tick = 0, time.perf_counter()
    for ir, vi in batches:
        ir = ir.to(device, non_blocking=precision.pin_memory)
        vi = vi.to(device, non_blocking=precision.pin_memory)
        with precision.autocast(device):
            output = net(ir, vi, reconstruct=phase == "structure")
        loss, terms = total_loss(output.float(), ir.float(), vi.float(), config, phase=phase)
        amp_step(loss, optimizer, scaler)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + float(value) * len(ir)
        images = phase_images(output, phase).detach().float().flatten(1)
        sums["brightness"] += float(images.mean(dim=1).sum()) * len(ir) / len(images)
        seen += len(ir)
        if hasattr(batches, "set_postfix"):
            batches.set_postfix(
                {name: f"{value / seen:.3f}" for name, value in sums.items()}
                | {"img_s": f"{seen / (time.perf_counter() - tick):.1f}"}
            )
    return {**sums, "images": seen}


@torch.no_grad()
def probe_images(
    model: SSPFusion, phase: str, ir: torch.Tensor, vi: torch.Tensor
) -> tuple[torch.Tensor, str]:
    """The phase's images of the probe pairs for the guard (eval mode)."""
    model.eval()
    output = model(ir, vi, reconstruct=phase == "structure")
    if phase == "structure":
        return torch.cat([output.reconstruction_ir, output.reconstruction_vi]), "reconstructions"
    return output.fused, "fused images"


def _preview(model, irs, vis, device, count: int = 4) -> bytes:
    """Infrared | visible Y | fused for the first ``count`` training pairs, as one PNG."""
    rows = []
    with torch.no_grad():
        for ir, vi in list(zip(irs, vis, strict=True))[:count]:
            to = lambda a: torch.tensor(a, dtype=torch.float32).div(255)[None, None].to(device)  # noqa: E731
            fused = model(to(ir), to(vi)).fused.clamp(0, 1)[0, 0].cpu().numpy()
            rows.append(np.concatenate([ir, vi, np.round(fused * 255).astype(np.uint8)], axis=1))
    width = max(row.shape[1] for row in rows)
    panel = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]))) for r in rows], axis=0)
    buffer = io.BytesIO()
    Image.fromarray(panel).save(buffer, format="PNG")
    return buffer.getvalue()


def train_fusion(
    config: ExperimentConfig,
    data_root: Path,
    out_dir: Path,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    identity: str | None = None,
) -> dict:
    """Train SSPFusion; write model.pt, checkpoint.pt, history.csv, summary.json and preview.png
    into ``out_dir``. ``stop_after`` ends after that many epochs (the next call with
    ``resume=True`` continues). ``identity`` (the stage identity of pipelines/engine) is stored
    in the checkpoint; only a checkpoint of the same identity is resumed. Returns a summary."""
    fus = config.fusion
    out_dir = Path(out_dir)
    device, place = init_distributed(pick_device(config.runtime.device))
    precision = resolve_precision(config.runtime, device)
    names, irs, vis = training_pairs(data_root, fus.max_pairs)
    dataset = FusionCrops(irs, vis, fus.crop_size, config.seed)
    probe = [images.to(device) for images in probe_pairs(irs, vis)]

    torch.manual_seed(config.seed)
    model = SSPFusion.from_config(fus).to(device)
    total_epochs = structure_epochs(fus) + fus.fusion_epochs
    start, history = 0, []
    checkpoint_path = out_dir / "checkpoint.pt"
    state = resume_state(checkpoint_path, resume, device, identity)
    if state is not None:
        model.load_state_dict(state["model"])
        start, history = state["epoch"], state["history"]
    phase = phase_of(fus, start)
    if model.target_sfe is not None and state is None and phase == "fusion":
        model.freeze_targets()  # no phase 1: the targets come from the initial extractor
    set_phase_trainable(model, phase)
    net = wrap_model(model, device, place)
    optimizer = torch.optim.Adam(model.parameters(), lr=fus.lr, betas=tuple(fus.betas))
    if state is not None and state["phase"] == phase:
        optimizer.load_state_dict(state["optimizer"])
    scaler = precision.make_scaler(device)
    last = total_epochs if stop_after is None else min(total_epochs, stop_after)
    guard = CollapseGuard("SSPFusion", probe, keep_evidence=lambda: write_history(out_dir, history, place))
    for epoch in range(start, last):
        if phase_of(fus, epoch) != phase:  # phase 2 starts with a fresh optimizer
            phase = phase_of(fus, epoch)
            if model.target_sfe is not None:
                model.freeze_targets()
            set_phase_trainable(model, phase)
            net = wrap_model(model, device, place)  # DDP fixes its parameter set when built
            optimizer = torch.optim.Adam(model.parameters(), lr=fus.lr, betas=tuple(fus.betas))
        lr = learning_rate(fus, epoch)
        begin_epoch(optimizer, lr, config.seed, epoch)
        loader = make_loader(dataset, fus.batch_size, place, config.seed, epoch, precision.pin_memory)
        model.train()
        tick = time.perf_counter()
        bar = progress_bar(
            loader, f"SSPFusion {phase} epoch {epoch + 1}/{total_epochs}", progress and place.is_main, lr=lr
        )
        sums = train_fusion_epoch(net, bar, optimizer, scaler, precision, device, fus, phase)
        images = sums.pop("images")
        row = {
            "epoch": epoch + 1,
            "phase": phase,
            "lr": lr,
            **epoch_means(sums, images, device, place),
            "seconds": round(time.perf_counter() - tick, 2),
        }
        history.append(row)
        images, what = probe_images(model, phase, *probe)
        guard.check(epoch + 1, phase, what, images, last=epoch + 1 == total_epochs)
        save_checkpoint(
            checkpoint_path,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "phase": phase,
                "history": history,
                "identity": identity,
            },
            place,
        )
    if last < total_epochs:
        return {"stopped_after_epoch": last}

    summary = {
        "parameters": count_parameters(model),
        "epochs": total_epochs,
        "train_pairs": len(names),
        "identity": identity,
        "seed": config.seed,
        "device": str(device),
        "precision": precision.name,
        "wall_seconds": round(sum(row["seconds"] for row in history), 1),
        "final_loss": history[-1]["total"] if history else None,
        "processes": place.world_size,
    }
    if place.is_main:
        model.eval()
        write_bytes_atomic(out_dir / "preview.png", _preview(unwrap(net), irs, vis, device))
        save_torch_atomic(out_dir / "model.pt", {"model": model.state_dict(), "fusion_config": to_dict(fus)})
        write_history(out_dir, history, place)
        write_json_atomic(out_dir / "summary.json", summary)
    barrier(place)
    return summary


def load_model(path: Path, device: torch.device | str = "cpu") -> SSPFusion:
    """Rebuild a model saved by train_fusion (weights only; no code is loaded)."""
    state = load_checkpoint(path, device)
    config = FusionConfig(**state["fusion_config"])
    model = SSPFusion.from_config(config)
    model.load_state_dict(state["model"])
    return model.to(device).eval()
