"""Train a learned fusion method (SSPFusion by default, or a learned baseline) or print its size.

    python pipelines/train_fusion.py [--method NAME] [--config configs/quick.yaml] [--data-root DIR]
                                     [--out DIR] [--force] [--no-progress] [--set fusion.fusion_epochs=20]
    python pipelines/train_fusion.py --method didfuse --config configs/paper.yaml --summary

--data-root is an MSRS root (its train split is used), an MFNet root (its train and val lists)
or any folder with ir/ and vi/ (RoadScene layout); a test pair is never trained on. --out is the
experiment folder (default runs/<config name>); the model goes to <out>/fusion/<method>/, under
the stage rules of run_all (pipelines/engine): a model of the same identity is kept, an
unfinished run of the same identity resumes, anything else there is moved aside (--force:
retrain anyway). NAME is sspfusion (default), a learned baseline (didfuse, auif, rfnnest, umf,
itfuse, cmtfusion, u2fusion, defusion, tardal), a plugin's network or a variant; its recipe and
sizes come from its config section (``fusion`` for SSPFusion, else its name); a variant (the
config's ``variants``) is its base with its ``set`` applied, trained into <out>/fusion/<variant>/.
--summary prints the parameter count next to the SSPFusion paper's Table 5 and the FLOPs of
fusing one 640x480 pair (torch.utils.flop_counter), and exits. Works under torchrun.
"""

import argparse
from pathlib import Path

import _common
import torch
from torch.utils.flop_counter import FlopCounterMode

from configs.schema import ConfigError, variant_config
from fusion.methods import is_trainable, resolve_method, trainable_methods
from fusion.methods.learned import recipe
from pipelines.engine import RunLayout, environment, fusion_stage, method_row, resolve_data_root, run_alone
from pipelines.engine.identity import Manifests
from runtime.device import setup_runtime


def summary(config, method: str) -> None:
    method, config = variant_config(config, method)
    learned = recipe(method)
    section = getattr(config, learned.config_section)
    model = learned.build_model(section).eval()
    parameters = learned.count_parameters(model)
    unused = learned.unused_parameters(section)
    counted = parameters + unused
    also = f" + {unused:,} the authors' model registers but never calls = {counted:,}" if unused else ""
    paper = learned.paper_parameters
    against = f" (paper Table 5: {paper:,}; {counted / paper - 1:+.2%})" if paper else ""
    print(f"{learned.title} parameters: {parameters:,}{also}{against}")
    ir = torch.rand(1, 1, 480, 640)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        learned.fuse(model, ir, ir.clone())
    flops = counter.get_total_flops()
    print(f"FLOPs at 640x480: {flops / 1e9:,.1f} G ({flops / 2e9:,.1f} G multiply-adds)")


def _is_learned(name: str) -> bool:
    try:
        return is_trainable(name)
    except ConfigError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_config_args(parser)
    parser.add_argument(
        "--method",
        default="sspfusion",
        help="a learned method (sspfusion, didfuse ..., a plugin's) or a variant the config defines",
    )
    _common.add_data_root_arg(parser)
    parser.add_argument("--out", type=Path, help="experiment folder (default: runs/<config name>)")
    parser.add_argument("--force", action="store_true", help="retrain, moving a finished model aside")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--summary", action="store_true", help="print size and FLOPs, then exit")
    args = parser.parse_args()
    config = _common.config_from_args(args)
    args.method = resolve_method(args.method)  # module:name of a plugin: the name it registered
    if args.method not in config.variants and not _is_learned(args.method):
        known = ", ".join([*trainable_methods(), *config.variants])
        parser.error(
            f"--method {args.method}: neither a learned method nor a variant of the config (valid: {known})"
        )
    if args.summary:
        summary(config, args.method)
        return 0
    setup_runtime(config.runtime)
    layout = RunLayout.default(config.name, args.out)
    data_root = resolve_data_root(config, args.data_root, layout)
    env = environment(config)
    stage = fusion_stage(config, layout, data_root, Manifests(), env, not args.no_progress, args.method)
    main_process = _common.is_main_process()
    done = run_alone(
        stage, args.force, env, main=main_process, log=print if main_process else lambda line: None
    )
    if not main_process:
        return 0
    result = done.get("result") or {}
    print(
        f"{method_row(config, args.method).label}: "
        f"{result['parameters']:,} parameters, {result['epochs']} epochs in "
        f"{result['wall_seconds']:.0f} s, final loss {result['final_loss']:.4f} -> {stage.folder}"
    )
    return 0


if __name__ == "__main__":
    _common.run_main(main)
