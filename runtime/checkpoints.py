"""Checkpoints: written atomically, read safely (tensors and plain containers only), and the
resume rule both trainers share (a checkpoint of another stage identity is refused)."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from configs.schema import ToolError
from runtime.distributed import Dist, barrier
from runtime.files import write_bytes_atomic


class CheckpointError(ToolError, ValueError):
    """A checkpoint is missing, unreadable, or of another stage identity."""


def save_torch_atomic(path: str | Path, payload) -> Path:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``: tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # any unpickling problem is the file's
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(error).__name__}: {error})"
        ) from None


def resume_state(path: Path, resume: bool, device: torch.device, identity: str | None = None) -> dict | None:
    """The checkpoint at ``path`` when resuming and it exists, else None. A checkpoint written
    under another stage ``identity`` is refused (ValueError naming the file)."""
    state = load_checkpoint(path, device) if resume and Path(path).is_file() else None
    if state is not None and state.get("identity") != identity:
        raise CheckpointError(
            f"{path}: written by a run of identity {state.get('identity')}, "
            f"not {identity}; move it aside to restart"
        )
    return state


def save_checkpoint(path: Path, state: dict, place: Dist) -> None:
    """Rank 0 writes ``state`` atomically; every rank waits for it."""
    if place.is_main:
        save_torch_atomic(path, state)
    barrier(place)
