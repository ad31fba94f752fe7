"""Stages as Slurm jobs through submitit (``run_all --launcher slurm``).

:func:`job_plan` turns the pending stages of a plan into jobs: one job per fusion training,
fuse and quality stage; the segmentation runs that wait for the same jobs in one job array (the
infrared and visible rows and seeds together, each method's seeds together); the report last,
after all of them. Each job waits ``afterok`` for the jobs of the stages it reads, so a
segmentation array starts when its fuse job has finished, which started when its fusion
training had. :func:`submit` hands them to Slurm with the resources of their stage kind
(``slurm:`` in the config); every job (every array task) runs
``run_all.py <the same arguments> --only <stage key>`` and logs under ``<run>/logs/slurm/``.

A job comes back by itself when it stops before its stage is done:

* out of time or preempted (Slurm's warning signal): submitit requeues it, at most
  ``slurm.timeouts`` times;
* failed (the stage exited non-zero, e.g. killed for memory): :class:`StageJob` requeues it,
  at most ``slurm.retries`` times, then fails, and Slurm cancels the jobs waiting for it
  (``--kill-on-invalid-dep``); ``run_all`` again resubmits what is left.

A requeued job keeps its id (the dependants keep waiting for it) and its stage resumes from its
last checkpoint, since the checkpoint carries the stage identity; the stage folder's lock keeps
two copies of one stage from running at once. Stages already finished are not submitted, and a
stage forced with ``--force`` is moved aside before submission, so a requeued job resumes it
instead of forcing it again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from configs.schema import ConfigError, SlurmConfig, SlurmResources
from pipelines.engine.markers import move_aside
from pipelines.engine.runner import check_upstream, selected, stage_command
from pipelines.engine.stage import Stage


@dataclass
class JobSpec:
    """One Slurm job (an array when ``keys`` has several stages): what it runs and waits for."""

    kind: str  # the slurm: section of its resources (a stage's resource_kind)
    keys: list[str]
    after: list[int] = field(default_factory=list)  # indices of the jobs it waits for (afterok)

    @property
    def name(self) -> str:
        return self.keys[0] if len(self.keys) == 1 else f"{self.kind}[{len(self.keys)}]"


def check_slurm() -> None:
    """That this machine can submit to a Slurm cluster: ``sbatch``, ``srun`` and ``scontrol`` on
    the path and a controller that answers ``scontrol ping``; a ConfigError saying what is
    missing otherwise. ``--launcher slurm`` checks it before anything is planned or written,
    in the dry run too."""
    missing = [tool for tool in ("sbatch", "srun", "scontrol") if shutil.which(tool) is None]
    if missing:
        raise ConfigError(
            f"--launcher slurm: {', '.join(missing)} not found on the path (no Slurm client on this "
            "machine); run from a login node of the cluster, or use --launcher local"
        )
    try:
        answer = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        answer = None
    if answer is None or answer.returncode or " is UP" not in answer.stdout:
        said = "no answer in 30 s" if answer is None else (answer.stdout + answer.stderr).strip()
        raise ConfigError(f"--launcher slurm: the Slurm controller does not answer (scontrol ping: {said})")


def job_plan(stages: list[Stage], only: list[str], command: str) -> list[JobSpec]:
    """The jobs that run the selected stages that are not current, upstream first. ``command``
    is the user's command line (for the error when an upstream stage is neither current nor
    selected)."""
    chosen = selected(stages, only)
    check_upstream(stages, chosen, command)
    jobs: list[JobSpec] = []
    job_of: dict[str, int] = {}
    arrays: dict[tuple[int, ...], int] = {}
    report = None
    for stage in chosen:
        if stage.status == "cached":
            continue
        if stage.kind == "report":
            report = stage
            continue
        after = sorted({job_of[key] for key in stage.upstream if key in job_of})
        if stage.kind == "segmentation" and tuple(after) in arrays:
            jobs[arrays[tuple(after)]].keys.append(stage.key)
            job_of[stage.key] = arrays[tuple(after)]
            continue
        if stage.kind == "segmentation":
            arrays[tuple(after)] = len(jobs)
        job_of[stage.key] = len(jobs)
        jobs.append(JobSpec(stage.resource_kind, [stage.key], after))
    if report is not None:
        jobs.append(JobSpec("report", [report.key], list(range(len(jobs)))))
    return jobs


def sbatch_options(resources: SlurmResources) -> dict:
    """submitit's SlurmExecutor parameters for one stage kind's resources."""
    options: dict = {
        "nodes": 1,
        "ntasks_per_node": 1,
        "cpus_per_task": resources.cpus,
        "mem": f"{round(resources.mem_gb * 1024)}M",
        "time": resources.minutes,
        # a job whose upstream failed for good is cancelled, not left pending forever; a requeued
        # job's log grows instead of starting again
        "additional_parameters": {
            "requeue": True,
            "kill_on_invalid_dep": "yes",
            "open_mode": "append",
            **resources.sbatch,
        },
    }
    if resources.partition:
        options["partition"] = resources.partition
    if resources.gpus:
        options["gpus_per_node"] = resources.gpus
    return options


def describe(jobs: list[JobSpec], slurm: SlurmConfig) -> list[str]:
    """One line per job, as ``--dry-run`` prints them."""
    lines = []
    for index, job in enumerate(jobs):
        resources = getattr(slurm, job.kind)
        waits = ", ".join(f"#{i} {jobs[i].name}" for i in job.after) or "nothing"
        where = f"{resources.partition or 'default partition'}, {resources.gpus} GPU, "
        where += f"{resources.cpus} CPU, {resources.mem_gb:g} GB, {resources.minutes} min"
        lines.append(f"  #{index} {job.name:40s} {where}; waits for {waits}")
        if len(job.keys) > 1:
            lines.extend(f"       task {task}: {key}" for task, key in enumerate(job.keys))
    return lines


class StageJob:
    """What one Slurm job (or array task) runs: ``command`` (run_all for one stage) in a child
    process. submitit calls :meth:`checkpoint` when the job runs out of time or is preempted:
    the same job is requeued, and the stage resumes from its checkpoint."""

    def __init__(self, command: list[str], key: str, retries: int) -> None:
        self.command, self.key, self.retries = command, key, retries

    def __call__(self) -> str:
        code = subprocess.call(self.command)
        if code == 0:
            return self.key
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        if restarts < self.retries:
            print(f"{self.key}: exited with {code}; requeued ({restarts + 1} of {self.retries})", flush=True)
            subprocess.check_call(["scontrol", "requeue", _this_job()], timeout=60)
            time.sleep(600)  # Slurm ends this copy of the job now
        raise RuntimeError(f"{self.key}: exited with {code} after {restarts} resubmission(s)")

    def checkpoint(self):
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def _this_job() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ["SLURM_JOB_ID"]


def submit(
    jobs: list[JobSpec],
    stages: list[Stage],
    slurm: SlurmConfig,
    command: list[str],
    folder: Path,
    name: str,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Submit ``jobs`` (from :func:`job_plan`) in order; return their Slurm job ids (an array's
    id stands for all its tasks). ``command`` is run_all's command line without ``--only``;
    each job appends its stage and its CPU count as torch threads."""
    import submitit

    by_key = {stage.key: stage for stage in stages}
    for job in jobs:
        for key in job.keys:
            stage = by_key[key]
            if stage.status == "forced" and stage.cache and stage.folder.exists():
                kept = move_aside(stage.folder, "forced")
                log(f"{key}: forced; previous result kept in {kept.name}")
    ids: list[str] = []
    for job in jobs:
        resources = getattr(slurm, job.kind)
        executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=slurm.timeouts)
        options = sbatch_options(resources)
        options.update(job_name=f"{name}:{job.name}", array_parallelism=slurm.array_parallelism)
        if job.after:
            options["dependency"] = "afterok:" + ":".join(ids[i] for i in job.after)
        executor.update_parameters(**options)
        calls = [
            StageJob(stage_command(command, key, resources.cpus), key, slurm.retries) for key in job.keys
        ]
        if len(calls) == 1 and job.kind != "segmentation":
            submitted = [executor.submit(calls[0])]
        else:
            with executor.batch():
                submitted = [executor.submit(call) for call in calls]
        ids.append(submitted[0].job_id.split("_")[0])
        waits = f", after {options['dependency']}" if job.after else ""
        log(f"  job {ids[-1]}: {job.name}{waits}")
    return ids


def wait(ids: list[str], poll: float = 5.0, log: Callable[[str], None] = print) -> None:
    """Until none of ``ids`` (or their array tasks) is pending or running, per ``squeue``;
    prints each change of state."""
    seen: dict[str, str] = {}
    while True:
        result = subprocess.run(
            ["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T %j"], capture_output=True, text=True
        )
        if result.returncode and "Invalid job id" not in result.stderr:
            raise RuntimeError(f"squeue failed: {result.stderr.strip()}")
        now = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.strip())
        for job, state in now.items():
            if seen.get(job) != state:
                log(f"  {job} {state}")
        if not now:
            return
        seen = now
        time.sleep(poll)


__all__ = ["JobSpec", "StageJob", "check_slurm", "describe", "job_plan", "sbatch_options", "submit", "wait"]
