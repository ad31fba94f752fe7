"""torchrun with two gloo processes on the CPU gives what one process gives for the same global
batch and seed, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO

TINY = str(REPO / "configs" / "tiny.yaml")


def _run(script: str, args: list[str], processes: int) -> subprocess.CompletedProcess:
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                     str(processes)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, str(REPO / "pipelines" / script), "--config", TINY,
                             "--no-progress", "--set", "runtime.threads=1", *args],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_segmentation_two_processes_match_one(synthetic_root, tmp_path):
    common = ["--input", "visible", "--data-root", str(synthetic_root)]
    _run("train_segmentation.py", [*common, "--out", str(tmp_path / "one")], 1)
    two = _run("train_segmentation.py", [*common, "--out", str(tmp_path / "two")], 2)
    assert two.stdout.count("mIoU") == 1  # rank 1 prints nothing
    assert _files(tmp_path / "one") == _files(tmp_path / "two")  # rank 0 only, no temp files
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    dist = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert dist["processes"] == 2 and one["processes"] == 1
    losses = [pd.read_csv(tmp_path / name / "history.csv")["loss"] for name in ("one", "two")]
    # BatchNorm is per rank on CPU (no SyncBatchNorm kernel there), hence the few-percent band.
    assert losses[0].to_numpy() == pytest.approx(losses[1].to_numpy(), rel=0.05)
    assert dist["pixel_accuracy"] == pytest.approx(one["pixel_accuracy"], abs=1.0)
    assert dist["miou"] == pytest.approx(one["miou"], abs=1.0)


def test_fusion_two_processes_match_one(synthetic_root, tmp_path):
    common = ["--data-root", str(synthetic_root), "--set", "fusion.fusion_epochs=2"]
    _run("train_fusion.py", [*common, "--out", str(tmp_path / "one")], 1)
    two = _run("train_fusion.py", [*common, "--out", str(tmp_path / "two")], 2)
    assert two.stdout.count("SSPFusion:") == 1
    folders = [tmp_path / name / "fusion" / "sspfusion" for name in ("one", "two")]
    assert _files(folders[0]) == _files(folders[1])
    summaries = [json.loads((f / "summary.json").read_text()) for f in folders]
    assert [s["processes"] for s in summaries] == [1, 2]
    histories = [pd.read_csv(f / "history.csv") for f in folders]
    assert histories[0]["total"].to_numpy() == pytest.approx(histories[1]["total"].to_numpy(),
                                                             rel=1e-3)
