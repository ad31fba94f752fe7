"""Where tensors run: the device, chosen once per stage, the CPUs this process may use,
determinism, seeds."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import numpy as np
import torch

from configs.schema import ConfigError, RuntimeConfig


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu. Chosen once per stage; library code moves
    tensors with ``.to(device)`` only."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device: '{name}' but no CUDA device is available (use auto or cpu)")
    return device


def available_cpus(cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may use: its affinity mask (what Slurm's ``--cpus-per-task`` or
    ``taskset`` leave it), lowered to a cgroup v2 CPU quota where one is set (a container's
    ``--cpus``). ``os.cpu_count()`` counts the whole node instead."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cgroup.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def local_processes() -> int:
    """Processes of this run on this node: torchrun's ``LOCAL_WORLD_SIZE``, else 1."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def cpu_share(runtime: RuntimeConfig) -> int:
    """The CPUs this process counts on: ``runtime.threads`` when set (``run_all --jobs`` and the
    Slurm launcher set it per child), else the available CPUs divided among the node's torchrun
    processes. Torch's threads and the loader's workers come out of it."""
    return runtime.threads or max(1, available_cpus() // local_processes())


def deterministic(runtime: RuntimeConfig, device: torch.device) -> bool:
    """``runtime.deterministic``: ``auto`` is on for the CPU, where every kernel has a
    deterministic form and runs repeat exactly, and off for CUDA, where bilinear upsampling's,
    adaptive pooling's, reflection padding's and NLL loss's backward have no deterministic
    kernel: asking for it would neither repeat runs nor let cuDNN pick its fastest algorithms."""
    if runtime.deterministic == "auto":
        return device.type != "cuda"
    return runtime.deterministic == "on"


def cudnn_autotune(runtime: RuntimeConfig, device: torch.device) -> bool:
    """``runtime.cudnn_benchmark``: ``auto`` is on for CUDA."""
    return runtime.cudnn_benchmark == "on" or (runtime.cudnn_benchmark == "auto" and device.type == "cuda")


def setup_runtime(runtime: RuntimeConfig) -> torch.device:
    """Pick the device, set the thread count (:func:`cpu_share`), determinism and cudnn
    autotuning.

    On the CPU runs repeat exactly. On CUDA (``auto``: autotuning on, deterministic algorithms
    off) results repeat to rounding only: cuDNN times its kernels and keeps the fastest, and
    several backward kernels accumulate with atomics. ``runtime.deterministic: on`` with
    ``cudnn_benchmark: off`` narrows that, but the kernels named in :func:`deterministic` still
    have no deterministic CUDA form (torch warns), so GPU runs are compared by their intervals,
    not bit for bit."""
    device = pick_device(runtime.device)
    torch.set_num_threads(cpu_share(runtime))
    exact = deterministic(runtime, device)
    torch.use_deterministic_algorithms(exact, warn_only=True)
    if exact:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    benchmark = cudnn_autotune(runtime, device)
    torch.backends.cudnn.benchmark = benchmark
    torch.backends.cudnn.deterministic = exact and not benchmark
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator for data order."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
