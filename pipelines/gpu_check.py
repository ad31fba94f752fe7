"""Five minutes on a GPU that say whether the paper's recipe will run right and how long Table 2
takes there.

    python pipelines/gpu_check.py [--config configs/paper.yaml] [--json gpu_check.json]
                                  [--epochs 3] [--images 48]
    torchrun --nproc_per_node 2 pipelines/gpu_check.py --ranks-only   # the two-rank comparison

On one GPU, with generated 480x640 scenes (no dataset needed), it checks and measures:

1. the device and the precision the config resolves to (bf16 where the GPU runs it natively);
2. that the config's pretrained encoder weights load from the cache, offline
   (``python pipelines/fetch_weights.py`` fills it);
3. the paper's segmentation recipe for ``--epochs`` epochs (the frozen phase and the full one),
   stopped after the first epoch and resumed, with finite losses that fall, and no host-device
   synchronisation inside a training step (``torch.cuda.set_sync_debug_mode("error")`` around
   the steps);
4. images/s of the segmentation step, of its loader, of SSPFusion's training step and of fusing
   a 640x480 pair, the peak GPU memory;
5. the projected GPU-hours of the paper's Table 2 from those rates (the config's epochs, MSRS's
   976 training images, its seeds and rows), printed and written to ``--json``.

With two or more GPUs it also runs the segmentation step under torchrun on two ranks and
compares the images/s with one. Without a GPU it says so and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
import numpy as np
import torch

from configs.schema import ConfigError
from runtime.files import write_json_atomic

MSRS_TRAIN, MSRS_TEST, MSRS_FUSED = 976, 361, 1083 + 361  # paper 4.1: training images, test, all fused


def _check(condition: bool, what: str) -> None:
    print(f"  {'ok  ' if condition else 'FAIL'} {what}", flush=True)
    if not condition:
        raise SystemExit(f"gpu check failed: {what}")


def _scenes(folder: Path, images: int) -> Path:
    from msrs.synthetic import write_synthetic

    return write_synthetic(folder, train=images, test=max(8, images // 4), height=480, width=640, seed=0)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(step, steps: int) -> float:
    step()
    _sync()
    tick = time.perf_counter()
    for _ in range(steps):
        step()
    _sync()
    return (time.perf_counter() - tick) / steps


def segmentation_run(config, root: Path, out: Path, epochs: int) -> dict:
    """The paper recipe on the generated scenes: ``epochs`` epochs, the first one alone, then
    resumed; the steps under the sync debug mode."""
    from segmentation import train as seg_train

    original = seg_train.train_one_epoch

    def strict(*args, **kwargs):
        if not torch.cuda.is_available():  # the suite runs this on the CPU, where nothing syncs
            return original(*args, **kwargs)
        torch.cuda.set_sync_debug_mode("error")
        try:
            return original(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    seg_train.train_one_epoch = strict
    try:
        first = seg_train.train_segmentation(config, root, "visible", out, 0, progress=False, stop_after=1)
        metrics = seg_train.train_segmentation(config, root, "visible", out, 0, resume=True, progress=False)
    finally:
        seg_train.train_one_epoch = original
    return {"stopped": first, "metrics": metrics}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_config_args(parser, default="configs/paper.yaml")
    parser.add_argument("--json", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--epochs", type=int, default=3, help="segmentation epochs of the recipe run")
    parser.add_argument("--images", type=int, default=48, help="generated training scenes")
    parser.add_argument("--ranks-only", action="store_true", help="(under torchrun) time the step only")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise ConfigError(
            "no CUDA GPU on this machine: the GPU check needs one (the CPU path is tested by the suite)"
        )
    config = _common.config_from_args(args)
    if args.ranks_only:
        return _rank_rate(config, args.json)
    from runtime.device import setup_runtime
    from runtime.precision import resolve_precision
    from segmentation.pretrained import require_weights

    device = setup_runtime(config.runtime)
    precision = resolve_precision(config.runtime, device)
    figures: dict = {"device": torch.cuda.get_device_name(device), "precision": precision.name}
    print(
        f"GPU check on {figures['device']} ({torch.cuda.device_count()} visible), torch {torch.__version__}"
    )
    _check(device.type == "cuda", f"device {device}")
    _check(
        precision.dtype is not None,
        f"precision {precision.name}, GradScaler {'on' if precision.scaler else 'off'}",
    )
    seg = config.segmentation
    os.environ["HF_HUB_OFFLINE"] = "1"  # the weights must come from the cache, as on a compute node
    weights = require_weights(seg.encoder, seg.encoder_weights)
    _check(True, f"{seg.encoder} {seg.encoder_weights} weights in the cache: {weights}")
    figures["weights"] = str(weights)

    with tempfile.TemporaryDirectory() as tmp:
        root = _scenes(Path(tmp) / "scenes", args.images)
        recipe_config = _common.config_from_args(args)
        recipe_config.segmentation.epochs = args.epochs
        recipe_config.segmentation.freeze_epochs = 1
        recipe_config.segmentation.val_fraction = 0.1
        recipe_config.segmentation.eval_every = 0
        torch.cuda.reset_peak_memory_stats(device)
        tick = time.perf_counter()
        run = segmentation_run(recipe_config, root, Path(tmp) / "seg", args.epochs)
        _check(run["stopped"] == {"stopped_after_epoch": 1}, "stopped after epoch 1, then resumed")
        import pandas as pd

        history = pd.read_csv(Path(tmp) / "seg" / "history.csv")
        _check(bool(np.isfinite(history["loss"]).all()), f"finite losses {history['loss'].round(3).tolist()}")
        _check(history["loss"].iloc[-1] < history["loss"].iloc[0], "the loss falls")
        _check(True, "no host-device synchronisation inside the training steps (sync debug mode: error)")
        figures["recipe_run"] = {
            "seconds": round(time.perf_counter() - tick, 1),
            "history": history.to_dict("records"),
            "miou_on_generated_scenes": run["metrics"]["miou"],
        }
        figures["segmentation"] = _rates(config, root, device)
        figures["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    figures["projection"] = _projection(config, figures["segmentation"])
    if torch.cuda.device_count() >= 2 and not args.ranks_only:
        figures["two_ranks"] = _two_ranks(args)
    _print(figures)
    write_json_atomic(args.json, figures)
    print(f"figures written to {args.json}")
    return 0


def _rates(config, root: Path, device, steps: int = 20, size: tuple[int, int] = (480, 640)) -> dict:
    """Images/s of the segmentation step (bare and through its loader), SSPFusion's training step
    and of fusing one pair of ``size``, from pipelines/benchmark.py's functions."""
    from benchmark import bench_fusion_infer, bench_fusion_train, bench_segmentation

    warmup = max(1, steps // 4)
    seg = bench_segmentation(config, root, device, steps=steps, warmup=warmup)
    fusion = bench_fusion_train(config, root, device, steps=steps, warmup=warmup)
    infer = bench_fusion_infer(config, size, device, steps=steps, warmup=min(3, warmup))
    return {"segmentation_step": seg, "sspfusion_step": fusion, "fusing": infer}


def _projection(config, rates: dict) -> dict:
    """GPU-hours of Table 2 from the measured rates: every learned fusion training taken at
    SSPFusion's rate (the largest network), fusing MSRS at the measured rate, and every row's
    segmentation runs at the loop rate of each phase."""
    seg, fus = config.segmentation, config.fusion
    step_rate = rates["segmentation_step"]["loop_images_per_second"]
    rows = len(config.inputs) + len(config.methods)
    seg_hours = seg.epochs * MSRS_TRAIN / step_rate / 3600
    from fusion.methods import is_trainable

    learned = [m for m in config.methods if is_trainable(m)]
    fusion_epochs = fus.structure_epochs + fus.fusion_epochs
    fusion_hours = fusion_epochs * 1083 / rates["sspfusion_step"]["loop_images_per_second"] / 3600
    fuse_hours = MSRS_FUSED / rates["fusing"]["images_per_second"] / 3600
    total = rows * config.seeds * seg_hours + len(learned) * (fusion_hours + fuse_hours)
    return {
        "segmentation_hours_per_run": round(seg_hours, 2),
        "table2_rows": rows,
        "seeds": config.seeds,
        "sspfusion_training_hours": round(fusion_hours, 2),
        "fusing_hours_per_method": round(fuse_hours, 3),
        "table2_gpu_hours": round(total, 1),
        "note": "learned baselines taken at SSPFusion's training rate; classic rules run on CPUs",
    }


def _rank_rate(config, out: Path) -> int:
    """(Each torchrun rank) images/s of the DDP-wrapped segmentation step on random 480x640
    batches of the config's batch size per rank; rank 0 writes the rate over all ranks."""
    import torch.distributed as dist

    from runtime.device import setup_runtime
    from runtime.distributed import init_distributed, wrap_model
    from runtime.precision import resolve_precision
    from runtime.training import amp_step
    from segmentation.losses import DiceCELoss
    from segmentation.model import model_from_config

    device, place = init_distributed(setup_runtime(config.runtime))
    precision = resolve_precision(config.runtime, device)
    seg = config.segmentation
    model = model_from_config(seg, seg.encoder_weights).to(device).to(memory_format=torch.channels_last)
    net = wrap_model(model, device, place, sync_batchnorm=place.enabled)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler, criterion = precision.make_scaler(device), DiceCELoss()
    x = precision.memory_format(torch.randn(seg.batch_size, 3, 480, 640, device=device))
    y = torch.randint(0, 9, (seg.batch_size, 480, 640), device=device)

    def step():
        with precision.autocast(device):
            loss = criterion(net(x), y)
        amp_step(loss, optimizer, scaler)

    rate = seg.batch_size * place.world_size / _timed(step, 20)
    if place.is_main:
        write_json_atomic(out, {"ranks": place.world_size, "images_per_second": round(rate, 1)})
    if place.enabled:
        dist.barrier()
    return 0


def _two_ranks(args) -> dict:
    """The DDP segmentation step's images/s on one rank and on two (torchrun)."""
    rates = {}
    for ranks in (1, 2):
        out = Path(tempfile.mkdtemp()) / "ranks.json"
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(ranks),
        ]
        result = subprocess.run(
            [*command, __file__, "--config", args.config, "--ranks-only", "--json", str(out)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode:
            return {"failed": ranks, "output": result.stdout[-2000:] + result.stderr[-2000:]}
        rates[ranks] = json.loads(out.read_text())["images_per_second"]
    print(f"segmentation step, DDP: {rates[1]} images/s on one GPU, {rates[2]} on two")
    return {"one_rank_images_per_second": rates[1], "two_ranks_images_per_second": rates[2]}


def _print(figures: dict) -> None:
    seg = figures["segmentation"]
    print(
        f"segmentation step: {seg['segmentation_step']['bare_images_per_second']:.1f} images/s bare, "
        f"{seg['segmentation_step']['loop_images_per_second']:.1f} through the loader"
    )
    print(
        f"SSPFusion training: {seg['sspfusion_step']['loop_images_per_second']:.1f} crops/s; "
        f"fusing 640x480: {seg['fusing']['images_per_second']:.1f} pairs/s"
    )
    print(f"peak GPU memory: {figures['peak_memory_gib']} GiB")
    projection = figures["projection"]
    print(
        f"projected: {projection['segmentation_hours_per_run']} GPU-h per segmentation run, "
        f"{projection['table2_gpu_hours']} GPU-h for Table 2 ({projection['table2_rows']} rows x "
        f"{projection['seeds']} seeds, learned methods' training and fusing included)"
    )


if __name__ == "__main__":
    _common.run_main(main)
