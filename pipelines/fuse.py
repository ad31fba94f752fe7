"""Fuse the splits of a data root with one method into <out>/fused/<method>/<split>/.

    python pipelines/fuse.py --method NAME [--config configs/quick.yaml] [--data-root DIR]
                             [--out DIR] [--checkpoint PATH] [--force] [--no-progress]

NAME is a registered method (see fusion/methods/__init__.py) or external:<folder>. --out is the
experiment folder (default runs/<config name>); a learned method (sspfusion, didfuse, auif,
rfnnest, umf, itfuse, cmtfusion, u2fusion, defusion, tardal) reads its model from --checkpoint
(default <out>/fusion/<method>/model.pt). A
fusion-only ir/ vi/ folder (RoadScene) is one split called "all". The stage rules of run_all
apply (pipelines/engine): a folder fused by the same method, parameters, model and sources is
kept, anything else there is moved aside (--force: fuse again anyway). Grey images of an
external folder get the visible Cb/Cr, as the built-in methods' images do (config
external_grey: keep leaves them grey).
"""

import argparse
from pathlib import Path

import _common

from configs.schema import variant_config
from pipelines.engine import (
    RunLayout,
    environment,
    fuse_stage,
    method_options,
    method_row,
    resolve_data_root,
    run_alone,
)
from pipelines.engine.identity import Manifests
from runtime.device import setup_runtime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_config_args(parser)
    parser.add_argument("--method", required=True, help="registered name or external:<folder>")
    _common.add_data_root_arg(parser)
    parser.add_argument("--out", type=Path, help="experiment folder (default: runs/<config name>)")
    parser.add_argument(
        "--checkpoint", type=Path, help="model of a learned method (default: <out>/fusion/<method>/model.pt)"
    )
    parser.add_argument("--force", action="store_true", help="fuse again, moving the old aside")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args()
    config = _common.config_from_args(args)
    layout = RunLayout.default(config.name, args.out)
    setup_runtime(config.runtime)
    data_root = resolve_data_root(config, args.data_root, layout)
    checkpoint = args.checkpoint or layout.fusion_model(args.method) / "model.pt"
    stage = fuse_stage(
        method_row(config, args.method),
        layout,
        data_root,
        Manifests(),
        checkpoint=checkpoint,
        progress=not args.no_progress,
        options=method_options(config, args.method),
        base=variant_config(config, args.method)[0],
    )
    done = run_alone(stage, args.force, environment(config))
    for split, result in (done.get("result") or {}).items():
        per_image = result["seconds"] / result["written"] * 1000 if result["written"] else 0.0
        print(
            f"{args.method} {split}: {result['written']} images, {per_image:.1f} ms per image "
            f"-> {stage.folder / split}"
        )
    return 0


if __name__ == "__main__":
    _common.run_main(main)
