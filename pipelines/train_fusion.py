"""Train a learned fusion method (SSPFusion by default, or a learned baseline) or print its size.

    python pipelines/train_fusion.py [--method sspfusion|didfuse|auif|rfnnest]
                                     [--config configs/quick.yaml] [--data-root DIR] [--out DIR]
                                     [--resume] [--no-progress] [--set fusion.fusion_epochs=20]
    python pipelines/train_fusion.py --method didfuse --config configs/paper.yaml --summary

--data-root is an MSRS root (its train split is used) or any folder with ir/ and vi/ (RoadScene
layout). --out is the experiment folder (default runs/<config name>); the model goes to
<out>/fusion/<method>/. --summary prints the parameter count next to the SSPFusion paper's Table 5
(for SSPFusion also the FLOPs of one 640x480 pair, torch.utils.flop_counter) and exits. The
method's recipe and sizes come from its config section (fusion, didfuse, auif, rfnnest). Works
under torchrun.
"""

import argparse
from pathlib import Path

import _common
import torch
from torch.utils.flop_counter import FlopCounterMode

from configs.experiment import fusion_stage_hash
from configs.runtime import guard_finished, mark_done, setup_runtime
from fusion.methods import TRAINABLE
from fusion.methods.learned import count_parameters as count_learned
from fusion.methods.learned import recipe
from fusion.methods.training import train_learned
from fusion.sspfusion.model import SSPFusion, count_parameters
from fusion.sspfusion.train import train_fusion
from msrs.synthetic import resolve_data_root

PAPER_PARAMETERS_K = 12021  # Table 5


def summary(config, method: str) -> None:
    if method != "sspfusion":
        learned = recipe(method)
        parameters = count_learned(learned.build_model(getattr(config, method)))
        print(f"{learned.title} parameters: {parameters:,} (paper Table 5: "
              f"{learned.paper_parameters:,}; {parameters / learned.paper_parameters - 1:+.2%})")
        return
    model = SSPFusion.from_config(config.fusion).eval()
    ir = torch.rand(1, 1, 480, 640)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(ir, ir.clone())
    parameters = count_parameters(model)
    print(f"parameters: {parameters} ({parameters / 1000:,.0f} K; paper Table 5: "
          f"{PAPER_PARAMETERS_K:,} K)")
    flops = counter.get_total_flops()
    print(f"FLOPs at 640x480: {flops / 1e9:,.1f} G ({flops / 2e9:,.1f} G multiply-adds)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_config_args(parser)
    parser.add_argument("--method", default="sspfusion", choices=TRAINABLE)
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--out", type=Path, help="experiment folder (default: runs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--force", action="store_true", help="retrain over a finished model")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--summary", action="store_true", help="print size and FLOPs, then exit")
    args = parser.parse_args()
    config = _common.config_from_args(args)
    if args.summary:
        summary(config, args.method)
        return 0
    setup_runtime(config.runtime)
    out = args.out or Path("runs") / config.name
    data_root = resolve_data_root(config.data, args.data_root, out)
    folder = out / "fusion" / args.method
    digest = fusion_stage_hash(config, data_root, args.method)
    if guard_finished(folder, digest, args.force):
        print(f"{folder}: already trained with this config (--force to retrain)")
        return 0
    if args.method == "sspfusion":
        result = train_fusion(config, data_root, folder, resume=args.resume,
                              progress=not args.no_progress)
    else:
        result = train_learned(args.method, config, data_root, folder, resume=args.resume,
                               progress=not args.no_progress)
    if not _common.is_main_process():
        return 0
    mark_done(folder, digest, kind="fusion")
    print(f"{args.method}: {result['parameters']:,} parameters, {result['epochs']} epochs in "
          f"{result['wall_seconds']:.0f} s, final loss {result['final_loss']:.4f} -> {folder}")
    return 0


if __name__ == "__main__":
    _common.run_main(main)
