"""Fuse the splits of a data root with one method into <out>/fused/<method>/<split>/.

    python pipelines/fuse.py --method NAME [--config configs/quick.yaml] [--data-root DIR]
                             [--out DIR] [--checkpoint PATH] [--splits train test] [--no-progress]

NAME is a registered method (see fusion/methods/__init__.py) or
external:<folder>. --out is the experiment folder (default runs/<config name>); a learned method
(sspfusion, didfuse, auif, rfnnest) reads its model from --checkpoint (default
<out>/fusion/<method>/model.pt). A fusion-only ir/ vi/
folder (RoadScene) is one split called "all". Files already written by the same method and
parameters are skipped.
"""

import argparse
from pathlib import Path

import _common

from configs.experiment import method_slug
from configs.runtime import setup_runtime
from fusion.fuse import fuse_split, source_pairs, source_splits
from fusion.methods import TRAINABLE, build_method
from msrs.synthetic import resolve_data_root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_config_args(parser)
    parser.add_argument("--method", required=True, help="registered name or external:<folder>")
    parser.add_argument("--data-root", type=Path, help="an MSRS root or an ir/ vi/ pair folder "
                        "(default: config data.root, else the built-in synthetic scenes)")
    parser.add_argument("--out", type=Path, help="experiment folder (default: runs/<config name>)")
    parser.add_argument("--checkpoint", type=Path, help="model of a learned method (default: "
                        "<out>/fusion/<method>/model.pt)")
    parser.add_argument("--splits", nargs="+", help="default: train test (all for a pair folder)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args()
    config = _common.config_from_args(args)
    out = args.out or Path("runs") / config.name
    setup_runtime(config.runtime)
    data_root = resolve_data_root(config.data, args.data_root, out)
    options = {}
    if args.method in TRAINABLE:
        options["checkpoint"] = args.checkpoint or out / "fusion" / args.method / "model.pt"
    method = build_method(args.method, **options)
    folder = out / "fused" / method_slug(args.method)
    for split in args.splits or source_splits(data_root):
        pairs = source_pairs(data_root, split)
        result = fuse_split(method, pairs, folder / split, progress=not args.no_progress,
                            split=split)
        per_image = result["seconds"] / result["written"] * 1000 if result["written"] else 0.0
        print(f"{args.method} {split}: {result['written']} written, {result['skipped']} already "
              f"there, {per_image:.1f} ms per image -> {folder / split}")
    return 0


if __name__ == "__main__":
    _common.run_main(main)
