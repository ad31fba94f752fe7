"""``run_all --launcher slurm``: the jobs it plans (no Slurm needed), and the tiny config through a
real one-node Slurm (marked ``slurm``: ``.ci/start-slurm``, then ``pytest -m slurm --slurm``),
with one job preempted and one killed on the way, giving the Table 2 of a local run."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from configs.schema import SlurmConfig, SlurmResources
from pipelines.engine.slurm import describe, job_plan, sbatch_options
from pipelines.engine.stage import Stage, UpstreamError
from segmentation.rows import Row

from .conftest import REPO, fake_slurm, run_pipeline

RUN_ALL = str(REPO / "pipelines" / "run_all.py")
TINY = str(REPO / "configs" / "tiny.yaml")


def _stage(key: str, kind: str, status: str = "new", upstream: tuple[str, ...] = (), cache: bool = True):
    def no(*_):
        raise AssertionError("a job plan runs nothing")

    row = Row.parse(key.removeprefix("segmentation:").rsplit(":", 1)[0]) if kind == "segmentation" else None
    folder = Path("/nonexistent") / key
    return Stage(key, kind, folder, no, no, no, upstream=upstream, cache=cache, row=row, status=status)


def _plan():
    return [
        _stage("fusion:sspfusion", "fusion"),
        _stage("fuse:sspfusion", "fuse", upstream=("fusion:sspfusion",)),
        _stage("fuse:average", "fuse", status="cached"),
        _stage("quality:sspfusion", "quality", upstream=("fuse:sspfusion",)),
        _stage("segmentation:infrared:seed0", "segmentation"),
        _stage("segmentation:infrared:seed1", "segmentation", status="cached"),
        _stage("segmentation:visible:seed0", "segmentation"),
        _stage("segmentation:fused:sspfusion:seed0", "segmentation", upstream=("fuse:sspfusion",)),
        _stage("segmentation:fused:sspfusion:seed1", "segmentation", upstream=("fuse:sspfusion",)),
        _stage("segmentation:fused:average:seed0", "segmentation", upstream=("fuse:average",)),
        _stage("report", "report", cache=False),
    ]


def test_each_job_waits_for_the_jobs_of_what_it_reads_and_rows_become_arrays():
    jobs = job_plan(_plan(), [], "run_all")
    assert [(job.kind, job.keys, job.after) for job in jobs] == [
        ("fusion", ["fusion:sspfusion"], []),
        ("fuse", ["fuse:sspfusion"], [0]),
        ("quality", ["quality:sspfusion"], [1]),
        # cached stages are not submitted; runs waiting for nothing share one array, and so do
        # runs waiting for the same fuse job; fuse:average is current, so its row waits for nothing
        (
            "segmentation",
            ["segmentation:infrared:seed0", "segmentation:visible:seed0", "segmentation:fused:average:seed0"],
            [],
        ),
        ("segmentation", ["segmentation:fused:sspfusion:seed0", "segmentation:fused:sspfusion:seed1"], [1]),
        ("report", ["report"], [0, 1, 2, 3, 4]),
    ]
    lines = describe(jobs, SlurmConfig())
    assert "#4 segmentation[2]" in lines[-4] and "waits for #1 fuse:sspfusion" in lines[-4]
    assert lines[-3].strip() == "task 0: segmentation:fused:sspfusion:seed0"


def test_only_submits_the_selection_and_refuses_a_missing_upstream():
    stages = _plan()
    jobs = job_plan(stages, ["input=fused:average"], "run_all")
    assert [job.keys for job in jobs] == [["segmentation:fused:average:seed0"]]
    with pytest.raises(UpstreamError, match="reads fuse:sspfusion.*--only fuse:sspfusion"):
        job_plan(stages, ["input=fused:sspfusion"], "run_all")


def test_sbatch_options_carry_the_stage_kind_resources():
    options = sbatch_options(
        SlurmResources(partition="gpu", gpus=1, cpus=16, mem_gb=64, minutes=720, sbatch={"qos": "low"})
    )
    assert options["partition"] == "gpu" and options["gpus_per_node"] == 1
    assert options["cpus_per_task"] == 16 and options["mem"] == "65536M" and options["time"] == 720
    assert options["additional_parameters"] == {
        "requeue": True,
        "kill_on_invalid_dep": "yes",
        "open_mode": "append",
        "qos": "low",
    }
    assert "partition" not in sbatch_options(SlurmResources())  # the cluster's default


def test_dry_run_lists_the_jobs_it_would_submit(tmp_path):
    result = run_pipeline(
        "run_all.py",
        *("--config", TINY, "--out", tmp_path / "run", "--launcher", "slurm", "--dry-run"),
        env=fake_slurm(tmp_path / "bin"),
    )
    assert result.returncode == 0, result.stderr
    assert "--launcher slurm would submit 9 job(s)" in result.stdout
    assert "waits for #1 fuse:sspfusion" in result.stdout
    assert not (tmp_path / "run" / "logs" / "slurm").exists()  # nothing submitted


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]], ids=["run", "dry run"])
@pytest.mark.parametrize("slurm", ["none", "DOWN"])
def test_without_a_slurm_the_launcher_says_so_and_writes_nothing(slurm, dry_run, tmp_path):
    # no Slurm tools at all: a path without them; or tools whose controller is down
    env = (
        {"PATH": str(Path(sys.executable).parent)} if slurm == "none" else fake_slurm(tmp_path / "bin", slurm)
    )
    out = tmp_path / "run"
    result = run_pipeline(
        "run_all.py", "--config", TINY, "--out", out, "--launcher", "slurm", *dry_run, env=env
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    expected = "sbatch, srun, scontrol not found" if slurm == "none" else "controller does not answer"
    assert expected in result.stderr and not out.exists()


def test_jobs_and_slurm_are_one_or_the_other(tmp_path):
    result = run_pipeline(
        "run_all.py", "--config", TINY, "--out", tmp_path, "--launcher", "slurm", "--jobs", "2"
    )
    assert result.returncode == 2 and "with --launcher slurm, Slurm does" in result.stderr


def _squeue() -> dict[str, tuple[str, str, str]]:
    """Job id -> (state, reason, name) of every queued job."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%r|%j"], capture_output=True, text=True, check=True)
    return {
        i: (state, reason, name)
        for i, state, reason, name in (line.split("|") for line in out.stdout.split())
    }


def _release_requeued() -> None:
    """Slurm holds a requeued job for two minutes (BeginTime); start it now."""
    for job, (state, reason, _) in _squeue().items():
        if state == "PENDING" and reason == "BeginTime":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=False)


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_config_through_slurm_gives_the_local_table(tmp_path):
    assert shutil.which("sbatch"), "--slurm given but no sbatch here: run .ci/start-slurm"
    # long enough segmentation runs to preempt one and kill another half way
    common = ["--config", TINY, "--no-progress", "--set", "segmentation.epochs=12"]
    local = subprocess.run(
        [sys.executable, RUN_ALL, *common, "--out", str(tmp_path / "local")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert local.returncode == 0, local.stderr[-3000:]
    out = tmp_path / "slurm"
    log = tmp_path / "slurm.log"
    run = subprocess.Popen(
        [sys.executable, RUN_ALL, *common, "--out", str(out), "--launcher", "slurm", "--wait"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    preempted = killed = False
    deadline = time.monotonic() + 1500
    while run.poll() is None:
        assert time.monotonic() < deadline, "the Slurm run did not end"
        infrared = out / "segmentation" / "infrared" / "seed0" / "checkpoint.pt"
        visible = out / "segmentation" / "visible" / "seed0" / "checkpoint.pt"
        if not preempted and infrared.is_file():  # what a preemption does: requeue the running job
            running = [
                j
                for j, (state, _, name) in _squeue().items()
                if state == "RUNNING" and name == "tiny:segmentation[2]" and j.endswith("_0")
            ]
            preempted = bool(running) and subprocess.run(["scontrol", "requeue", *running]).returncode == 0
        if not killed and visible.is_file():  # a failure: the stage's process dies (e.g. for memory)
            killed = (
                subprocess.run(["pkill", "-9", "-f", "--", "--only segmentation:visible:seed0"]).returncode
                == 0
            )
        _release_requeued()
        time.sleep(0.2)
    output = log.read_text()
    assert run.returncode == 0, output[-4000:]
    assert preempted and killed
    assert "submitting 9 job(s)" in output
    logs = {path.name: path.read_text() for path in (out / "logs" / "slurm").rglob("*_log.out")}
    assert len(logs) == 10  # 9 jobs, one of them an array of 2 tasks
    resumed = [
        name for name, text in logs.items() if "resume (unfinished; its checkpoint has this identity)" in text
    ]
    assert len(resumed) == 2, resumed  # the preempted and the killed run went on from their checkpoints
    assert any("exited with -9; requeued" in text for text in logs.values())
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "report" / "table2.csv"), pd.read_csv(tmp_path / "local" / "report" / "table2.csv")
    )
