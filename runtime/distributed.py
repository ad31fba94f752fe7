"""DistributedDataParallel and mixed precision, for both training stages.

Without torchrun nothing changes: one process, rank 0, world size 1. Under
``torchrun --nproc_per_node K pipelines/<stage>.py ...`` the process group is initialised from
the environment torchrun sets (gloo on CPU, nccl on CUDA), each rank takes ``1/K`` of the
config's global batch, and only rank 0 writes files.

Data order is the same whatever K is: the training loops always draw batches through a
``DistributedSampler`` seeded from the run's seed and ``set_epoch(epoch)``, so with one process
the sampler yields the whole permutation and with K processes rank r takes every K-th index of
the *same* permutation. Consecutive per-rank batches of size B/K then together hold exactly the
global batch a single process would draw, and DDP's gradient averaging reproduces the
single-process step. BatchNorm statistics are those of the global batch too: on CUDA through
``torch.nn.SyncBatchNorm``, on the CPU (which that class does not support) through
:class:`GlooSyncBatchNorm` below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_autograd

from configs.schema import ConfigError


@dataclass(frozen=True)
class Dist:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> tuple[torch.device, Dist]:
    """Join the process group torchrun describes (no-op without torchrun). On CUDA each rank
    takes GPU ``local_rank``. Returns the device to use and this process's place."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return device, Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, Dist(rank, world, local)


def per_rank_batch(global_batch: int, place: Dist) -> int:
    """The per-process batch keeping the global batch equal to the config's."""
    if global_batch % place.world_size:
        raise ConfigError(
            f"batch {global_batch} cannot be split evenly over {place.world_size} "
            "processes; choose a batch divisible by --nproc_per_node"
        )
    return global_batch // place.world_size


def all_reduce_sum(tensor: torch.Tensor, place: Dist) -> torch.Tensor:
    """Sum a tensor over ranks in place (a confusion matrix, a loss total)."""
    if place.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(place: Dist) -> None:
    if place.enabled:
        dist.barrier()


class GlooSyncBatchNorm(torch.nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are taken over the whole global batch, for CPU
    process groups (``torch.nn.SyncBatchNorm`` runs on CUDA only). The per-channel sums go
    through the autograd-aware ``all_reduce`` of ``torch.distributed.nn``, so the gradient also
    flows through the shared statistics, exactly as in one process with the whole batch. Eval
    mode uses the running statistics and communicates nothing. Same parameters, buffers and
    state-dict keys as BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized():
            return super().forward(x)
        dims = [0, 2, 3]
        count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        totals = dist_autograd.all_reduce(torch.cat([x.sum(dims), count]))
        n = totals[-1]
        mean = totals[:-1] / n
        centred = x - mean[None, :, None, None]
        var = dist_autograd.all_reduce(centred.pow(2).sum(dims)) / n  # two passes: stable
        out = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), momentum)
        return out


def convert_gloo_sync_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Swap every BatchNorm2d of ``module`` (in place) for a :class:`GlooSyncBatchNorm` holding
    the same parameters and buffers; returns the module."""
    for name, child in module.named_children():
        if type(child) is torch.nn.BatchNorm2d:
            synced = GlooSyncBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            synced.load_state_dict(child.state_dict())
            synced.train(child.training)
            for parameter, original in zip(synced.parameters(), child.parameters(), strict=True):
                parameter.requires_grad_(original.requires_grad)
            setattr(module, name, synced.to(next(child.buffers(), torch.empty(0)).device))
        else:
            convert_gloo_sync_batchnorm(child)
    return module


def wrap_model(
    model: torch.nn.Module, device: torch.device, place: Dist, sync_batchnorm: bool = False
) -> torch.nn.Module:
    """DDP-wrap when distributed (BatchNorm synchronised first when asked, in place); the model
    itself otherwise.

    ``static_graph``: the trainers build a new wrapper whenever what trains changes (a phase, the
    unfreeze), so within one wrapper every step uses the same parameters. DDP then learns in the
    first step which parameters take no part (a module the authors' model registers but never
    calls) and skips them from then on, without ``find_unused_parameters``' search of the
    autograd graph after every forward."""
    if not place.enabled:
        return model
    if sync_batchnorm and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif sync_batchnorm:
        model = convert_gloo_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, static_graph=True)


def close_distributed() -> None:
    """Leave the process group (at the end of a stage run under torchrun; no-op otherwise)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
