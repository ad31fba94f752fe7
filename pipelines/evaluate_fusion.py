"""Fusion quality (Table 1): fuse one split with each method, then EN SD SF AG MI SCD VIF Qabf SSIM.

    python pipelines/evaluate_fusion.py --methods average gtf ... [--config configs/quick.yaml]
        [--data-root DIR] [--out DIR] [--convention python|matlab] [--split test] [--limit N]
        [--checkpoint PATH] [--no-progress]

Runs the fuse and quality stages of run_all (pipelines/engine: cached when current, moved
aside when not) into <out>/fused/<method>/ and <out>/quality/<method>/per_image.csv, then
writes <out>/report/table1.{csv,md}: the mean of every metric per method, plus fuse_ms and
metrics_ms (milliseconds per image). --limit limits the metrics, not the fusing. A fusion-only
ir/ vi/ folder (e.g. RoadScene) is one split called "all" and is used whole.
"""

import argparse
from pathlib import Path

import _common
import pandas as pd

from configs.schema import variant_config
from msrs.layout import ALL, PAIRS, detect_layout, list_split
from pipelines.engine import (
    RunLayout,
    environment,
    fuse_stage,
    method_options,
    method_row,
    quality_stage,
    resolve_data_root,
    run_alone,
)
from pipelines.engine.identity import Manifests
from runtime.device import setup_runtime
from runtime.files import write_text_atomic
from segmentation.report import table1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_config_args(parser)
    parser.add_argument("--methods", nargs="+", help="default: the config's methods")
    _common.add_data_root_arg(parser)
    parser.add_argument("--out", type=Path, help="experiment folder (default: runs/<config name>)")
    parser.add_argument(
        "--convention",
        choices=("python", "matlab"),
        help="metric convention (default: config metrics_convention)",
    )
    parser.add_argument(
        "--split",
        default="test",
        help="split of an MSRS or MFNet root (default: %(default)s; a pair folder has only 'all')",
    )
    parser.add_argument("--limit", type=int, help="only the first N pairs (quick checks)")
    parser.add_argument(
        "--checkpoint", type=Path, help="model of a learned method (default: <out>/fusion/<method>/model.pt)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args()
    config = _common.config_from_args(args)
    layout = RunLayout.default(config.name, args.out)
    convention = args.convention or config.metrics_convention
    setup_runtime(config.runtime)
    data_root = resolve_data_root(config, args.data_root, layout)
    split = ALL if detect_layout(data_root) == PAIRS else args.split
    pairs = list_split(data_root, split, labels=False)
    limit = args.limit if args.limit and args.limit < len(pairs) else None
    env, manifests = environment(config), Manifests()
    quality, timing = {}, {}
    for name in args.methods or config.methods:
        checkpoint = args.checkpoint or layout.fusion_model(name) / "model.pt"
        row = method_row(config, name)
        fused = run_alone(
            fuse_stage(
                row,
                layout,
                data_root,
                manifests,
                checkpoint=checkpoint,
                progress=not args.no_progress,
                options=method_options(config, name),
                base=variant_config(config, name)[0],
            ),
            False,
            env,
        )
        written = (fused.get("result") or {}).get(split, {})
        fuse_ms = written["seconds"] / written["written"] * 1000 if written.get("written") else None
        stage = quality_stage(row, layout, data_root, convention, manifests, split, limit, upstream=())
        scored = run_alone(stage, False, env)
        quality[row.label] = pd.read_csv(stage.folder / "per_image.csv", dtype={"name": str})
        timing[row.label] = (fuse_ms, (scored.get("result") or {}).get("metrics_ms"))
        print(
            f"{name}: {len(quality[row.label])} images, fuse {fuse_ms or float('nan'):.1f} ms/image, "
            f"metrics {timing[row.label][1] or float('nan'):.1f} ms/image"
        )
    table = table1(quality)
    table["fuse_ms"] = [timing[name][0] for name in quality]
    table["metrics_ms"] = [timing[name][1] for name in quality]
    report = layout.report
    write_text_atomic(report / "table1.csv", table.to_csv(index=False, float_format="%.4f"))
    write_text_atomic(
        report / "table1.md",
        f"# Table 1: fusion quality, mean over "
        f"{len(next(iter(quality.values())))} "
        f"images of {data_root} ({split}), {convention} convention\n\n"
        + table.to_markdown(index=False, floatfmt=".3f")
        + "\n",
    )
    print(table.to_markdown(index=False, floatfmt=".3f"))
    print(f"-> {report / 'table1.csv'}")
    return 0


if __name__ == "__main__":
    _common.run_main(main)
