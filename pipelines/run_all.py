"""From data to Table 2 in one command: train fusion -> fuse splits -> train segmentation per input
-> report.

    python pipelines/run_all.py [--config configs/quick.yaml] [--data-root DIR] [--methods ...]
                                [--seeds N] [--only STAGE ...] [--force STAGE ...] [--dry-run]
                                [--out DIR] [--jobs N] [--launcher local|slurm [--wait]]

STAGE is one of fusion, fuse, quality, segmentation, report, a stage key shown by --dry-run
(e.g. segmentation:visible:seed0), or input=NAME (the segmentation runs of one table row, e.g.
input=fused:gtf: what a cluster job array calls per row). A stage is cached while its identity
(settings that change its result, code version, the contents of what it reads) is unchanged;
a killed run continues from its checkpoint when started again; a stale or forced result is
moved aside, never deleted (pipelines/engine).

``--launcher slurm`` submits every pending stage as a Slurm job instead (submitit), each waiting
for the jobs of the stages it reads, with the resources of the config's ``slurm:`` section;
``--dry-run`` lists the jobs, ``--wait`` follows them until they end (pipelines/engine/slurm.py).
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

import _common

from pipelines.engine import (
    RunLayout,
    build_plan,
    check_selectors,
    environment,
    is_synthetic,
    plan_status,
    resolve_data_root,
    run_plan,
)
from pipelines.engine.parallel import run_parallel
from pipelines.engine.runner import check_upstream, selected
from pipelines.engine.slurm import check_slurm, describe, job_plan, submit, wait
from runtime.device import setup_runtime

# what selects the stages or says where they run: a child process runs one stage, here
CHILD_DROPS = ("--only", "--force", "--jobs", "--launcher", "--wait")


def _without_option(argv: list[str], *options: str) -> list[str]:
    """argv less ``option VALUE...`` / ``option=VALUE`` for each of ``options`` (values run to
    the next ``--`` token)."""
    kept, skipping = [], False
    for token in argv:
        if token.startswith("--"):
            skipping = token in options
            if skipping or any(token.startswith(option + "=") for option in options):
                continue
        elif skipping:
            continue
        kept.append(token)
    return kept


def _child_command() -> list[str]:
    """This run_all command line for a child process that runs one stage here
    (:func:`pipelines.engine.runner.stage_command` adds the stage)."""
    return [sys.executable, *_without_option(sys.argv, *CHILD_DROPS)]


def _submit(args, config, layout, stages, rerun: str, env: dict, start: float) -> int:
    """``--launcher slurm``: submit the pending stages; with ``--wait``, follow them and print
    what they left (Table 2 when the report ran)."""
    jobs = job_plan(stages, args.only, rerun)
    if not jobs:
        print("nothing to submit: every selected stage is current")
        return 0
    print(f"submitting {len(jobs)} job(s) to Slurm, logs in {layout.logs / 'slurm'}:")
    command = [*_child_command(), "--no-progress"]
    ids = submit(jobs, stages, config.slurm, command, layout.logs / "slurm", config.name)
    if not args.wait:
        print(f"follow them with: squeue -j {','.join(ids)}")
        return 0
    wait(ids)
    plan_status(stages)
    chosen = selected(stages, args.only)
    unfinished = [stage.key for stage in chosen if stage.cache and stage.status != "cached"]
    table = layout.report / "table2.md"
    if table.is_file() and not unfinished and any(job.kind == "report" for job in jobs):
        print(table.read_text())
        print(f"report: {layout.report}")
    print(f"wall time {time.perf_counter() - start:.0f} s")
    if unfinished:
        logs = layout.logs / "slurm"
        print(f"not finished: {', '.join(unfinished)} (logs in {logs}); rerun to resubmit them")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_config_args(parser)
    _common.add_data_root_arg(parser, labelled=True)
    parser.add_argument("--methods", nargs="+", help="fusion methods (default: config methods)")
    parser.add_argument("--seeds", type=int, help="segmentation trainings per input")
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="STAGE",
        help="run only these: a stage kind (fusion, fuse, quality, segmentation, report), a stage "
        "key shown by --dry-run (segmentation:visible:seed0), or input=NAME (one Table 2 row, "
        "e.g. input=fused:gtf); upstream stages must be current",
    )
    parser.add_argument(
        "--force",
        nargs="+",
        default=[],
        metavar="STAGE",
        help="rerun these stages and those reading them (old results kept)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="validate and print the plan: why each stage is cached or runs"
    )
    parser.add_argument("--out", type=Path, help="default: runs/<config name>")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--launcher",
        choices=("local", "slurm"),
        default="local",
        help="local: run here (default); slurm: submit each pending stage as a Slurm job (submitit)",
    )
    parser.add_argument(
        "--wait", action="store_true", help="with --launcher slurm: follow the jobs until they end"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="segmentation runs side by side, each in its own process (one GPU each when there are several)",
    )
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.launcher == "slurm" and args.jobs > 1:
        parser.error("--jobs runs stages side by side on this machine; with --launcher slurm, Slurm does")
    if args.wait and args.launcher != "slurm":
        parser.error("--wait follows Slurm jobs: give --launcher slurm")
    args.typed = {}
    if args.seeds is not None:
        args.overrides.append(f"seeds={args.seeds}")
        args.typed[args.overrides[-1]] = f"--seeds {args.seeds}"
    if args.methods is not None:
        args.overrides.append("methods=[" + ",".join(f"'{m}'" for m in args.methods) + "]")
        args.typed[args.overrides[-1]] = "--methods " + " ".join(args.methods)
    if args.launcher == "slurm":
        check_slurm()  # before anything is read or written
    config = _common.config_from_args(args)
    layout = RunLayout.default(config.name, args.out)
    start = time.perf_counter()
    setup_runtime(config.runtime)
    data_root = resolve_data_root(config, args.data_root, layout, dry_run=args.dry_run)
    env = environment(config)
    stages = build_plan(config, layout, data_root, config.methods, env, progress=not args.no_progress)
    check_selectors(stages, args.only, "--only")
    check_selectors(stages, args.force, "--force")
    plan_status(stages, args.force)
    print(
        f"experiment '{config.name}': {len(stages)} stages, data {data_root}"
        f"{' (synthetic)' if is_synthetic(data_root) else ''}, output {layout.out}"
    )
    rerun = shlex.join([Path(sys.executable).name, *_without_option(sys.argv, "--only", "--force", "--jobs")])
    if args.dry_run:
        check_upstream(stages, selected(stages, args.only), rerun)  # what the run would refuse
        for stage in stages:
            print(f"  {stage.status:7s} {stage.key:45s} {stage.reason}")
        if args.launcher == "slurm":
            jobs = job_plan(stages, args.only, rerun)
            print(f"--launcher slurm would submit {len(jobs)} job(s), logs in {layout.logs / 'slurm'}:")
            print("\n".join(describe(jobs, config.slurm)))
        return 0
    if args.launcher == "slurm":
        return _submit(args, config, layout, stages, rerun, env, start)
    if args.jobs > 1:
        run_parallel(stages, args.only, args.jobs, _child_command(), layout.logs, env, rerun)
        stages = build_plan(config, layout, data_root, config.methods, env, progress=not args.no_progress)
        plan_status(stages)
        if not args.only or "report" in args.only:
            run_plan(stages, ["report"], env, rerun)
    else:
        run_plan(stages, args.only, env, rerun)
    table = layout.report / "table2.md"
    if (not args.only or "report" in args.only) and table.is_file():
        print(table.read_text())
        print(f"report: {layout.report}")
    print(f"wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    _common.run_main(main)
