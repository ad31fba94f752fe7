"""From data to Table 2 in one command: train fusion -> fuse splits -> train segmentation per input
-> report.

    python pipelines/run_all.py [--config configs/quick.yaml] [--data-root DIR] [--methods ...]
                                [--seeds N] [--only STAGE ...] [--force STAGE ...] [--dry-run]
                                [--out DIR]

STAGE is one of fusion, fuse, quality, segmentation, report, a stage key shown by --dry-run
(e.g. segmentation:visible:seed0), or input=NAME (the segmentation runs of one table row, e.g.
input=fused:gtf: what a cluster job array calls per row). Finished stages are cached by config
hash; a killed run continues where it stopped when started again.
"""

import argparse
import sys
import time
from pathlib import Path

import _common
import yaml

from configs.experiment import (
    build_plan,
    finished_quality_tables,
    finished_segmentation_runs,
    is_synthetic,
    plan_status,
    run_parallel,
    run_plan,
)
from configs.runtime import setup_runtime
from configs.schema import to_dict
from msrs.synthetic import resolve_data_root


def _without_option(argv: list[str], option: str) -> list[str]:
    """argv less ``option VALUE`` / ``option=VALUE``."""
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == option:
            skip = True
        elif not token.startswith(option + "="):
            kept.append(token)
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_config_args(parser)
    parser.add_argument("--data-root", type=Path, help="an MSRS root (default: config data.root, "
                        "else the built-in synthetic scenes)")
    parser.add_argument("--methods", nargs="+", help="fusion methods (default: config methods)")
    parser.add_argument("--seeds", type=int, help="segmentation trainings per input")
    parser.add_argument("--only", nargs="+", default=[], metavar="STAGE")
    parser.add_argument("--force", nargs="+", default=[], metavar="STAGE")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the plan")
    parser.add_argument("--out", type=Path, help="default: runs/<config name>")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--jobs", type=int, default=1, help="segmentation runs side by side, "
                        "each in its own process (one GPU each when there are several)")
    args = parser.parse_args()
    if args.seeds is not None:
        args.overrides.append(f"seeds={args.seeds}")
    if args.methods is not None:
        args.overrides.append("methods=[" + ",".join(f"'{m}'" for m in args.methods) + "]")
    config = _common.config_from_args(args)
    out = args.out or Path("runs") / config.name
    start = time.perf_counter()
    setup_runtime(config.runtime)
    data_root = resolve_data_root(config.data, args.data_root, out)
    stages = build_plan(config, out, data_root, config.methods, progress=not args.no_progress)
    plan_status(stages, args.force)
    print(f"experiment '{config.name}': {len(stages)} stages, data {data_root}"
          f"{' (synthetic)' if is_synthetic(data_root) else ''}, output {out}")
    if args.dry_run:
        for stage in stages:
            print(f"  {stage.status:7s} {stage.key:45s} {stage.folder}")
        return 0
    if args.jobs > 1:
        command = [sys.executable, *_without_option(sys.argv, "--jobs")]
        run_parallel(stages, args.only, args.jobs, command, out / "logs")
        stages = build_plan(config, out, data_root, config.methods)
    else:
        run_plan(stages, args.only)
    if args.only and not any(sel == "report" for sel in args.only):
        return 0
    from segmentation.report import write_report
    from segmentation.report_page import collect_facts, write_report_page

    runs = finished_segmentation_runs(stages)
    if not runs:
        print("report: no finished segmentation run yet")
        return 0
    fused_dirs = {stage.key.removeprefix("fuse:"): stage.folder / "test" for stage in stages
                  if stage.kind == "fuse" and stage.folder.joinpath("test").is_dir()}
    written = write_report(out / "report", runs, finished_quality_tables(stages),
                           real_msrs=not is_synthetic(data_root), data_root=data_root,
                           fused_dirs=fused_dirs)
    written |= write_report_page(out / "report", written, collect_facts(
        sys.argv, yaml.safe_dump(to_dict(config), sort_keys=False), stages, runs, data_root,
        not is_synthetic(data_root)))
    print((out / "report" / "table2.md").read_text())
    print("report: " + ", ".join(str(path) for path in written.values()))
    print(f"wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    _common.run_main(main)
