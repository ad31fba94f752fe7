"""Train DeepLabV3+ on one input and print its per-class IoU.

    python pipelines/train_segmentation.py --config configs/quick.yaml --input visible \\
        [--data-root DIR] [--out DIR] [--seed S] [--force] [--no-progress]
    python pipelines/train_segmentation.py --config configs/paper.yaml --summary [--data-root DIR]

--input is infrared, visible, or a folder of fused images with one subfolder per split (train/,
test/; MFNet also val/) named like the pairs. --out is the experiment folder, as for every
stage script (default runs/<config name>); the run goes to <out>/segmentation/<input>/seed<S>,
where run_all puts the same run. The stage rules of run_all apply (pipelines/engine): a
finished run of the same identity is kept, an unfinished one of the same identity resumes from
its checkpoint, anything else there is moved aside (only a folder this tool wrote). Works under
torchrun.
--summary prints the network as
built (encoder, output stride, ASPP rates), the train / validation / test counts (of --data-root,
else MSRS's 1083 / 361) and the lr of a few epochs, and exits.
"""

import argparse
from pathlib import Path

import _common
import pandas as pd

from pipelines.engine import RunLayout, environment, resolve_data_root, run_alone, segmentation_stage
from pipelines.engine.identity import Manifests
from runtime.device import setup_runtime
from segmentation.rows import SOURCES, Row
from segmentation.summary import recipe_summary


def print_summary(config, data_root) -> None:
    info = recipe_summary(config, data_root)
    weights = info["encoder_weights"] or "none (random)"
    print(
        f"{config.name}: encoder {info['encoder']} (weights: {weights}), output stride "
        f"{info['output_stride']}, ASPP atrous rates {tuple(info['atrous_rates'])}, "
        f"decoder width {info['decoder_channels']}"
    )
    images = info["images"]
    print(
        f"images: {images['train']} train, {images['val']} validation ({info['val_source']}),"
        f" {images['test']} test; counted from {info['counted_from']}"
    )
    chosen = {"last": "the last epoch's", "lowest_val_loss": "the lowest validation loss"}
    print(f"reported model: {chosen[info['reported_model']]}")
    print(pd.DataFrame(info["schedule"]).to_string(index=False, formatters={"lr": "{:.3e}".format}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_config_args(parser)
    parser.add_argument("--input", help="infrared | visible | a fused folder holding train/ and test/")
    _common.add_data_root_arg(parser, labelled=True)
    parser.add_argument("--out", type=Path, help="experiment folder (default: runs/<config name>)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--force", action="store_true", help="retrain, moving a finished run aside")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--summary", action="store_true", help="print the network, image counts and lr schedule, then exit"
    )
    args = parser.parse_args()
    config = _common.config_from_args(args)
    if args.summary:
        root = args.data_root or (Path(config.data.root) if config.data.root else None)
        print_summary(config, root)
        return 0
    if not args.input:
        parser.error("--input is required (or --summary)")
    setup_runtime(config.runtime)
    layout = RunLayout.default(config.name, args.out)
    seed = config.seed if args.seed is None else args.seed
    fused = None if args.input in SOURCES else Path(args.input)
    row = Row(args.input) if fused is None else Row.fused(fused.name)
    data_root = resolve_data_root(config, args.data_root, layout)
    env = environment(config)
    stage = segmentation_stage(
        config,
        layout,
        data_root,
        row,
        seed,
        Manifests(),
        env,
        fused=fused,
        progress=not args.no_progress,
    )
    main_process = _common.is_main_process()
    done = run_alone(
        stage, args.force, env, main=main_process, log=print if main_process else lambda line: None
    )
    if not main_process:
        return 0
    metrics = done.get("result") or {}
    table = pd.Series(metrics["per_class_iou"], dtype=float).rename("IoU %").to_frame()
    print(table.to_string(float_format=lambda v: f"{v:6.1f}", na_rep="   n/a"))
    print(
        f"{row.label} seed {seed}: mIoU {metrics['miou']:.1f}%, pixel accuracy "
        f"{metrics['pixel_accuracy']:.1f}%, {metrics['epochs']} epochs in "
        f"{metrics['wall_seconds']:.0f} s -> {stage.folder}"
    )
    return 0


if __name__ == "__main__":
    _common.run_main(main)
