"""Independent segmentation runs side by side, each in its own process (``run_all --jobs``)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pipelines.engine.plan import Stage, check_upstream, run_plan, selected, stage_command


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
    :func:`~pipelines.engine.plan.stage_command`), ``jobs`` at a time
    (on CUDA, child i sees GPU ``i mod n`` only; on the CPU the cores are shared out through
    ``runtime.threads``). A child's output goes to ``log_dir/<key>.log``. The report is left to
    the caller (it reads the children's results). ``rerun`` is the command line for errors."""
    import torch

    chosen = [s for s in selected(stages, only) if s.kind != "report"]
    check_upstream(stages, chosen, rerun)
    run_plan([s for s in chosen if s.kind != "segmentation"], [], environment, rerun, log)
    pending = [s for s in chosen if s.kind == "segmentation" and s.status != "cached"]
    gpus = torch.cuda.device_count()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log_dir.mkdir(parents=True, exist_ok=True)
    running: list[tuple[Stage, subprocess.Popen, object]] = []
    failed: list[str] = []
    for index, stage in enumerate(pending):
        while len(running) >= jobs:
            running = _reap(running, failed)
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
        handle = open(log_dir / f"{stage.key.replace(':', '_')}.log", "w")
        child = subprocess.Popen(
            stage_command(command, stage.key, threads, forced=stage.status == "forced"),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log(
            f"[{index + 1}/{len(pending)}] {stage.key}: started in process {child.pid} "
            f"({stage.status}: {stage.reason})"
        )
        running.append((stage, child, handle))
    while running:
        running = _reap(running, failed)
    if failed:
        raise RuntimeError(
            "segmentation runs failed: " + ", ".join(failed) + f" (logs in {log_dir}); rerun to resume them"
        )


def _reap(running, failed: list[str]):
    still = []
    for stage, child, handle in running:
        code = child.poll()
        if code is None:
            still.append((stage, child, handle))
            continue
        handle.close()
        if code:
            failed.append(stage.key)
    if len(still) == len(running):
        time.sleep(0.5)
    return still


__all__ = ["run_parallel"]
