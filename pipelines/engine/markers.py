"""The one vocabulary of finished and superseded stage folders.

* ``done.json`` in a stage folder: the stage finished, with the identity it was run under
  (:class:`pipelines.engine.identity.Identity`), the digest of its output, the environment and
  the wall time. Nothing else marks a stage finished.
* ``stage.json``: written first into a folder the engine starts a stage in (the stage's key,
  when, which process). A folder holding none of ``done.json``, ``stage.json`` or
  ``checkpoint.pt`` is not the engine's: it is never moved aside (:class:`ForeignFolder`).
* ``checkpoint.pt`` of a training stage carries the identity of the run that wrote it
  (:func:`checkpoint_identity`); only a checkpoint of the same identity is resumed.
* A folder that is not current (another identity, an unfinished run of another identity,
  ``--force``) is moved aside to ``<folder>.superseded-<time>-<why>`` with a unique name; nothing
  is ever deleted.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from configs.schema import ToolError
from runtime.checkpoints import load_checkpoint
from runtime.files import write_json_atomic

DONE = "done.json"
STARTED = "stage.json"
CHECKPOINT = "checkpoint.pt"
MARKERS = (DONE, STARTED)  # files of a stage folder that are not part of its output


class ForeignFolder(ToolError, ValueError):
    """A stage's folder holds files the engine did not write; the message says which folder."""


def read_done(folder: str | Path) -> dict | None:
    """The ``done.json`` of ``folder``, or None when missing or unreadable."""
    path = Path(folder) / DONE
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def write_done(folder: str | Path, payload: dict) -> Path:
    return write_json_atomic(Path(folder) / DONE, payload)


def checkpoint_identity(folder: str | Path) -> str | None:
    """The identity stored in ``folder/checkpoint.pt``; None without a checkpoint, ``unknown``
    for one that is unreadable or was written without an identity."""
    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        return None
    try:
        return str(load_checkpoint(path).get("identity") or "unknown")
    except ValueError:
        return "unknown"


def mark_started(folder: str | Path, key: str) -> Path:
    """Write ``stage.json``: the engine owns this folder from now on."""
    return write_json_atomic(
        Path(folder) / STARTED,
        {"stage": key, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "pid": os.getpid()},
    )


def is_stage_folder(folder: str | Path) -> bool:
    """True for a folder the engine wrote (a marker or a checkpoint in it) or an empty one."""
    folder = Path(folder)
    return not any(folder.iterdir()) or any((folder / name).is_file() for name in (*MARKERS, CHECKPOINT))


def move_aside(folder: str | Path, why: str) -> Path:
    """Rename ``folder`` to a unique ``<folder>.superseded-<time>-<why>`` beside it. Only a
    stage folder (:func:`is_stage_folder`) is moved: anything else is :class:`ForeignFolder`."""
    folder = Path(folder)
    if folder.is_dir() and not is_stage_folder(folder):
        raise ForeignFolder(
            f"{folder}: holds files this tool did not write (no {DONE}, {STARTED} or {CHECKPOINT}); "
            "it is not moved aside: give a new or empty folder"
        )
    stem = f"{folder.name}.superseded-{time.strftime('%Y%m%dT%H%M%S')}-{why}"
    target, number = folder.with_name(stem), 1
    while target.exists():
        number += 1
        target = folder.with_name(f"{stem}-{number}")
    folder.rename(target)
    return target


__all__ = [
    "DONE",
    "STARTED",
    "CHECKPOINT",
    "MARKERS",
    "ForeignFolder",
    "read_done",
    "write_done",
    "checkpoint_identity",
    "mark_started",
    "is_stage_folder",
    "move_aside",
]
