"""Run-time plumbing every stage shares: device choice, seeding, atomic files, checkpoints.

Nothing here knows about fusion or segmentation. Files are written to a temporary name in the
same folder and renamed into place, so an interrupted run never leaves a half-written result.
When a stage is finished is the stage engine's business (``pipelines/engine``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import tempfile
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


_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic_write(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def file_sha256(path: str | Path) -> str:
    """The first 16 hex digits of the SHA-256 of a file's bytes."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()[:16]


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    return _atomic_write(Path(path), lambda handle: handle.write(data))


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | Path, payload) -> Path:
    return write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def save_torch_atomic(path: str | Path, payload) -> Path:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``: tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # any unpickling problem is the file's
        raise ValueError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None
