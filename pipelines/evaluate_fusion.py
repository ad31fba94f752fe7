"""Fusion quality (Table 1): fuse one split with each method, then EN SD SF AG MI SCD VIF Qabf SSIM.

    python pipelines/evaluate_fusion.py --methods average gtf ... [--config configs/quick.yaml]
        [--data-root DIR] [--out DIR] [--convention python|matlab] [--split test] [--limit N]
        [--checkpoint PATH] [--no-progress]

Writes <out>/fused/<method>/<split>/ (skipping images already fused with the same settings),
<out>/quality/<method>/per_image.csv and <out>/report/table1.{csv,md}: the mean of every metric
per method, plus fuse_ms and metrics_ms (milliseconds per image). A fusion-only ir/ vi/ folder
(e.g. ../shared/data/roadscene-50) is one split called "all" and is used whole.
"""

import argparse
import json
import math
import time
from pathlib import Path

import _common

from configs.experiment import method_slug
from configs.runtime import setup_runtime, write_json_atomic, write_text_atomic
from fusion.fuse import ALL, fuse_split, is_pair_folder, source_pairs
from fusion.methods import TRAINABLE, build_method
from fusion.quality import evaluate_split
from msrs.synthetic import resolve_data_root
from segmentation.report import table1

TIMING = "timing.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_config_args(parser)
    parser.add_argument("--methods", nargs="+", help="default: the config's methods")
    parser.add_argument("--data-root", type=Path, help="an MSRS root or an ir/ vi/ pair folder "
                        "(default: config data.root, else the built-in synthetic scenes)")
    parser.add_argument("--out", type=Path, help="experiment folder (default: runs/<config name>)")
    parser.add_argument("--convention", choices=("python", "matlab"),
                        help="metric convention (default: config metrics_convention)")
    parser.add_argument("--split", default="test", help="MSRS split (default: %(default)s; a pair "
                        "folder has only 'all')")
    parser.add_argument("--limit", type=int, help="only the first N pairs (quick checks)")
    parser.add_argument("--checkpoint", type=Path, help="model of a learned method (default: "
                        "<out>/fusion/<method>/model.pt)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args()
    config = _common.config_from_args(args)
    out = args.out or Path("runs") / config.name
    convention = args.convention or config.metrics_convention
    setup_runtime(config.runtime)
    data_root = resolve_data_root(config.data, args.data_root, out)
    split = ALL if is_pair_folder(data_root) else args.split
    pairs = source_pairs(data_root, split)
    if args.limit:
        pairs = pairs[: args.limit]
    quality, timing = {}, {}
    for name in args.methods or config.methods:
        options = {}
        if name in TRAINABLE:
            options["checkpoint"] = args.checkpoint or out / "fusion" / name / "model.pt"
        method = build_method(name, **options)
        slug = method_slug(name)
        fused = out / "fused" / slug / split
        result = fuse_split(method, pairs, fused, progress=not args.no_progress, split=split)
        timing_file = out / "quality" / slug / TIMING
        if result["written"]:
            fuse_ms = result["seconds"] / result["written"] * 1000
        else:  # everything was already there: the time measured when it was written, if known
            previous = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
            fuse_ms = previous.get("fuse_ms", math.nan)
        start = time.perf_counter()
        frame = evaluate_split(fused, pairs, convention)
        metrics_ms = (time.perf_counter() - start) / max(len(pairs), 1) * 1000
        write_text_atomic(out / "quality" / slug / "per_image.csv", frame.to_csv(index=False))
        write_json_atomic(timing_file, {"fuse_ms": fuse_ms, "metrics_ms": metrics_ms,
                                        "images": len(pairs), "split": split,
                                        "convention": convention})
        quality[name] = frame
        timing[name] = (fuse_ms, metrics_ms)
        print(f"{name}: {len(frame)} images, fuse {fuse_ms:.1f} ms/image, metrics "
              f"{metrics_ms:.1f} ms/image")
    table = table1(quality)
    table["fuse_ms"] = [timing[name][0] for name in quality]
    table["metrics_ms"] = [timing[name][1] for name in quality]
    report = out / "report"
    write_text_atomic(report / "table1.csv", table.to_csv(index=False, float_format="%.4f"))
    write_text_atomic(report / "table1.md", f"# Table 1: fusion quality, mean over {len(pairs)} "
                      f"images of {data_root} ({split}), {convention} convention\n\n"
                      + table.to_markdown(index=False, floatfmt=".3f") + "\n")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    print(f"-> {report / 'table1.csv'}")
    return 0


if __name__ == "__main__":
    _common.run_main(main)
