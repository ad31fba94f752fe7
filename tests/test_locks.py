"""Stage-folder locks (pipelines/engine/locks.py) with real processes: a second process on a
folder stops with the holder named, a dead holder's lock is taken over, and two runs of one
stage at once leave one consistent result."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pipelines.engine.locks import StageBusy, holder, locked

from .conftest import REPO

HOLD = """
import sys, time
sys.path.insert(0, {repo!r})
from pipelines.engine.locks import locked
with locked({folder!r}, "a test holding the lock"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder_process(folder):
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(repo=str(REPO), folder=str(folder))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_live_holder_is_named_and_a_dead_one_is_taken_over(tmp_path):
    folder = tmp_path / "stage"
    child = _holder_process(folder)
    try:
        with pytest.raises(StageBusy, match=rf"{folder} is held by pid {child.pid} on \S+ since \S+ "):
            with locked(folder, "second"):
                pass
        assert f"pid {child.pid}" in holder(folder)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert holder(folder) is None  # the kernel dropped the dead process's lock
    with locked(folder, "after the crash"):
        assert json.loads((tmp_path / "stage.lock").read_text())["pid"] == os.getpid()


def test_two_processes_on_one_segmentation_stage(synthetic_root, tmp_path):
    command = [
        sys.executable,
        str(REPO / "pipelines" / "train_segmentation.py"),
        "--config",
        str(REPO / "configs" / "tiny.yaml"),
        "--input",
        "visible",
        "--data-root",
        str(synthetic_root),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
        "--set",
        "segmentation.epochs=40",
        "--set",
        "runtime.threads=1",
    ]
    stage = tmp_path / "run" / "segmentation" / "visible" / "seed0"
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.time() + 120
    while not (stage / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    second = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"is held by pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
    assert not list(stage.parent.glob("seed0.superseded-*"))  # the live folder was not moved
    done = json.loads((stage / "done.json").read_text())
    metrics = json.loads((stage / "metrics.json").read_text())
    assert metrics["identity"] == done["identity"] and metrics["epochs"] == 40
    assert f"mIoU {metrics['miou']:.1f}%" in out  # what the first printed is what the folder holds
