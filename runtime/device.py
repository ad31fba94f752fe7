"""Where tensors run: the device, chosen once per stage, threads, determinism, seeds."""

from __future__ import annotations

import os
import random

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


def setup_runtime(runtime: RuntimeConfig) -> torch.device:
    """Pick the device, set thread count, determinism and cudnn autotuning.

    ``cudnn_benchmark`` (auto = on for CUDA) lets cudnn time its kernels and keep the fastest,
    which can differ from run to run: CUDA results then repeat only to rounding. CPU runs are
    unaffected and repeat exactly; set ``runtime.cudnn_benchmark: off`` for repeatable GPU runs.
    """
    device = pick_device(runtime.device)
    threads = runtime.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    if runtime.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    benchmark = runtime.cudnn_benchmark == "on" or (
        runtime.cudnn_benchmark == "auto" and device.type == "cuda"
    )
    torch.backends.cudnn.benchmark = benchmark
    torch.backends.cudnn.deterministic = runtime.deterministic and not benchmark
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator for data order."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
