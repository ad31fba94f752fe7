"""Exclusive locks on stage folders, the report, the synthetic data and the digest memo.

A process that works on a folder holds ``<folder>.lock`` (beside the folder, which may be moved
aside while held) with an exclusive ``fcntl.flock``. The file holds who holds it (pid, host,
since when, what for). A second process does not wait for a stage: it stops with
:class:`StageBusy`, one line naming the holder, so a requeued cluster job cannot write into the
folder its first copy is still writing. For work of seconds (generating the synthetic scenes,
saving the digest memo) it waits instead (``wait=True``). The kernel drops the lock of a
process that dies, so a lock left by a crashed or killed run is taken over by the next process,
whatever its file still says.
Lock files stay in place (removing one while another process waits on it would let two
processes hold "the" lock); they are not part of any stage's output.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from configs.schema import ToolError

SUFFIX = ".lock"


class StageBusy(ToolError, RuntimeError):
    """Another live process holds the lock; the message names it in one line."""


def lock_path(folder: str | Path) -> Path:
    folder = Path(folder)
    return folder.with_name(folder.name + SUFFIX)


def _describe(folder: Path, handle) -> str:
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "{}")
    except ValueError:
        holder = {}
    return (
        f"{folder} is held by pid {holder.get('pid', '?')} on {holder.get('host', '?')} since "
        f"{holder.get('since', '?')} ({holder.get('what', 'working on it')}); wait for it to "
        "finish, or stop that process"
    )


@contextlib.contextmanager
def locked(folder: str | Path, what: str, wait: bool = False) -> Iterator[None]:
    """Hold the exclusive lock of ``folder`` (``what``: the work, for the message another
    process gets); :class:`StageBusy` when a live process holds it, or with ``wait`` block
    until it lets go."""
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise StageBusy(_describe(Path(folder), handle)) from None
        handle.seek(0)
        handle.truncate()
        since = time.strftime("%Y-%m-%dT%H:%M:%S")
        handle.write(
            json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since, "what": what})
        )
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def holder(folder: str | Path) -> str | None:
    """Who holds ``folder``'s lock now (the :class:`StageBusy` message), or None when nobody
    does. Only looks: takes and releases the lock at once when it is free."""
    path = lock_path(folder)
    if not path.is_file():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(Path(folder), handle)
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


__all__ = ["StageBusy", "holder", "lock_path", "locked"]
