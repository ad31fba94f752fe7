"""Independent segmentation runs side by side, each in its own process (``run_all --jobs``)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pipelines.engine.runner import check_upstream, run_plan, selected, stage_command
from pipelines.engine.stage import Stage
from runtime.device import available_cpus


def visible_gpus(environ: dict | None = None) -> list[str]:
    """The GPUs this process may hand out, as ``CUDA_VISIBLE_DEVICES`` names them (indices or
    UUIDs; a Slurm job's allocation, a user's choice), else every GPU torch sees."""
    environ = os.environ if environ is None else environ
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip() and not gpu.strip().startswith("-")]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


class GpuPool:
    """Hands each child the GPU fewest children are using now (the first such in the visible
    list), and takes it back when the child ends: with ``--jobs`` equal to the GPU count every
    running child has a GPU of its own, however the children finish."""

    def __init__(self, gpus: list[str]):
        self.users = dict.fromkeys(gpus, 0)

    def take(self) -> str | None:
        if not self.users:
            return None
        gpu = min(self.users, key=self.users.get)
        self.users[gpu] += 1
        return gpu

    def give_back(self, gpu: str | None) -> None:
        if gpu is not None:
            self.users[gpu] -= 1


def run_parallel(
    stages: list[Stage],
    only: list[str],
    jobs: int,
    command: list[str],
    log_dir: Path,
    environment: dict,
    rerun: str,
    log: Callable[[str], None] = print,
) -> None:
    """Run the selected stages before segmentation here, in order; then each pending
    segmentation stage in its own process (``command`` through
    :func:`~pipelines.engine.runner.stage_command`), ``jobs`` at a time. On CUDA each child sees
    one GPU of the visible ones (:class:`GpuPool`); the CPUs this process may use are shared out
    among the children through ``runtime.threads`` (their torch threads and loader workers). A
    child's output goes to ``log_dir/<key>.log``. The report is left to the caller (it reads the
    children's results). ``rerun`` is the command line for errors."""
    chosen = [s for s in selected(stages, only) if s.kind != "report"]
    check_upstream(stages, chosen, rerun)
    run_plan([s for s in chosen if s.kind != "segmentation"], [], environment, rerun, log)
    pending = [s for s in chosen if s.kind == "segmentation" and s.status != "cached"]
    pool = GpuPool(visible_gpus())
    threads = max(1, available_cpus() // jobs)
    log_dir.mkdir(parents=True, exist_ok=True)
    running: list[tuple[Stage, subprocess.Popen, object, str | None]] = []
    failed: list[str] = []
    for index, stage in enumerate(pending):
        while len(running) >= jobs:
            running = _reap(running, failed, pool)
        env = dict(os.environ)
        gpu = pool.take()
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        handle = open(log_dir / f"{stage.key.replace(':', '_')}.log", "w")
        child = subprocess.Popen(
            stage_command(command, stage.key, threads, forced=stage.status == "forced"),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )
        on = f" on GPU {gpu}" if gpu is not None else ""
        log(
            f"[{index + 1}/{len(pending)}] {stage.key}: started in process {child.pid}{on} "
            f"({stage.status}: {stage.reason})"
        )
        running.append((stage, child, handle, gpu))
    while running:
        running = _reap(running, failed, pool)
    if failed:
        raise RuntimeError(
            "segmentation runs failed: " + ", ".join(failed) + f" (logs in {log_dir}); rerun to resume them"
        )


def _reap(running, failed: list[str], pool: GpuPool):
    still = []
    for stage, child, handle, gpu in running:
        code = child.poll()
        if code is None:
            still.append((stage, child, handle, gpu))
            continue
        handle.close()
        pool.give_back(gpu)
        if code:
            failed.append(stage.key)
    if len(still) == len(running):
        time.sleep(0.5)
    return still


__all__ = ["GpuPool", "run_parallel", "visible_gpus"]
