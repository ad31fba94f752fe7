"""run_all end to end on configs/tiny.yaml: report files, caching, kill + resume = uninterrupted."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from .conftest import REPO

RUN_ALL = str(REPO / "pipelines" / "run_all.py")
TINY = str(REPO / "configs" / "tiny.yaml")
pytestmark = pytest.mark.slow


def _run_all(out, *extra, timeout=600):
    return subprocess.run(
        [sys.executable, RUN_ALL, "--config", TINY, "--out", str(out), "--no-progress", *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_full_run_then_everything_cached(tmp_path):
    out = tmp_path / "run"
    first = _run_all(out)
    assert first.returncode == 0, first.stderr[-3000:]
    report = out / "report"
    for name in (
        "table2.csv",
        "table2.md",
        "table1.csv",
        "table1.md",
        "miou.png",
        "per_class_iou.png",
    ):
        assert (report / name).is_file(), name
    assert len(list(report.glob("qualitative-*.png"))) == 3  # one figure per example test image
    table = pd.read_csv(report / "table2.csv")
    assert list(table["input"]) == ["Infrared", "Visible", "Average", "SSPFusion"]
    assert table["miou"].between(0, 100).all()
    second = _run_all(out)
    assert second.returncode == 0, second.stderr[-3000:]
    ran = [line for line in second.stdout.splitlines() if line.startswith("[")]
    assert len(ran) == 10 and ran[-1].startswith("[10/10] report: new (rebuilt whenever it runs)")
    assert all(": cached" in line for line in ran[:-1]), second.stdout
    assert pd.read_csv(report / "table2.csv").equals(table)
    changed = _run_all(out, "--set", "segmentation.epochs=2", "--only", "segmentation")
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert (out / "segmentation" / "visible" / "seed0" / "done.json").is_file()
    assert list((out / "segmentation" / "visible").glob("seed0.superseded-*"))
    plan = _run_all(out, "--dry-run")
    assert plan.returncode == 0, plan.stderr[-3000:]
    lines = {
        line.split()[1]: line.split(maxsplit=2)[::2]
        for line in plan.stdout.splitlines()
        if line.startswith("  ")
    }
    assert lines["segmentation:visible:seed0"] == ["stale", "changed: config (segmentation.epochs 2 -> 3)"]
    assert lines["fuse:average"] == ["cached", "identity and output unchanged"]
    assert (out / "report" / "provenance.json").is_file()


def test_bad_plan_fails_before_training(tmp_path):
    unknown = _run_all(tmp_path / "a", "--methods", "nosuchfusion", "average")
    assert unknown.returncode == 2
    assert "unknown fusion method 'nosuchfusion'" in unknown.stderr and "average" in unknown.stderr
    missing = _run_all(tmp_path / "b", "--data-root", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "data root not found" in missing.stderr
    typo = _run_all(tmp_path / "c", "--set", "segmentation.epoch=2")
    assert typo.returncode == 2 and "segmentation.epoch" in typo.stderr
    assert not (tmp_path / "a" / "segmentation").exists()


def test_killed_during_segmentation_resumes_to_the_same_table(tmp_path):
    reference = _run_all(tmp_path / "reference", "--methods", "average")
    assert reference.returncode == 0, reference.stderr[-3000:]

    out = tmp_path / "killed"
    command = [
        sys.executable,
        RUN_ALL,
        "--config",
        TINY,
        "--out",
        str(out),
        "--no-progress",
        "--methods",
        "average",
    ]
    child = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    checkpoint = out / "segmentation" / "visible" / "seed0" / "checkpoint.pt"
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert checkpoint.exists(), "segmentation never wrote a checkpoint"
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert not (out / "segmentation" / "visible" / "seed0" / "done.json").exists()

    resumed = _run_all(out, "--methods", "average")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "segmentation:visible:seed0: resume" in resumed.stdout
    ours = pd.read_csv(out / "report" / "table2.csv")
    theirs = pd.read_csv(tmp_path / "reference" / "report" / "table2.csv")
    pd.testing.assert_frame_equal(ours, theirs)
    metrics = json.loads((out / "segmentation" / "visible" / "seed0" / "metrics.json").read_text())
    assert metrics["seed"] == 0


def test_jobs_run_rows_side_by_side_to_the_same_table(tmp_path):
    one_thread = ("--methods", "average", "--set", "runtime.threads=1")
    sequential = _run_all(tmp_path / "sequential", *one_thread)
    assert sequential.returncode == 0, sequential.stderr[-3000:]
    parallel = _run_all(tmp_path / "parallel", *one_thread, "--jobs", "2")
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    assert parallel.stdout.count("started in process") == 3  # infrared, visible, fused:average
    logs = sorted(p.name for p in (tmp_path / "parallel" / "logs").glob("*.log"))
    assert len(logs) == 3
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "parallel" / "report" / "table2.csv"),
        pd.read_csv(tmp_path / "sequential" / "report" / "table2.csv"),
    )


@pytest.mark.real_data
def test_tiny_run_on_real_mfnet_release_layout(real_data, tmp_path):
    """The whole chain on the real MFNet folder as shipped (no converted copy): fusion trains on
    train + val, every split is fused, segmentation validates on val.txt and is scored on the
    39 test pairs, day and night apart."""
    out = tmp_path / "mfnet"
    result = _run_all(
        out,
        "--data-root",
        str(real_data / "mfnet-156"),
        "--set",
        "segmentation.image_scale=0.25",
        "--set",
        "segmentation.val_fraction=0.1",
        "--set",
        "segmentation.reported_model=lowest_val_loss",
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "fusion" / "sspfusion" / "summary.json").read_text())["train_pairs"] == 117
    for split, count in (("train", 98), ("val", 19), ("test", 39)):
        assert len(list((out / "fused" / "average" / split).glob("*.png"))) == count
    metrics = json.loads((out / "segmentation" / "visible" / "seed0" / "metrics.json").read_text())
    assert (metrics["train_images"], metrics["val_images"], metrics["test_images"]) == (98, 19, 39)
    split = json.loads((out / "segmentation" / "visible" / "seed0" / "split.json").read_text())
    assert split["source"] == "the data root's val split" and len(split["val"]) == 19
    table = pd.read_csv(out / "report" / "table2.csv").set_index("input")
    assert (table["day_images"] == 19).all() and (table["night_images"] == 20).all()
    assert table["miou_night"].notna().all() and table["miou_day_ci_low"].notna().all()
    page = (out / "report" / "index.md").read_text()
    assert "real MFNet data (MFNet layout)" in page and "19 day and 20 night scenes" in page
