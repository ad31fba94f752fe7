"""Throughput of the training and inference steps, bare and inside the real loops.

    python pipelines/benchmark.py seg [--config configs/quick.yaml] [--size H W] [--json F]
    python pipelines/benchmark.py loader [--config configs/paper.yaml] [--size 480 640] [--workers 0 1 2]
        [--loader-images 96] [--epochs 3]
    python pipelines/benchmark.py fusion-train [--config ...] [--size H W] [--json F]
    python pipelines/benchmark.py fusion-infer [--config ...] [--size 480 640] [--json F]
    python pipelines/benchmark.py stats [--rows 14 --seeds 3 --images 361] [--json F]
    python pipelines/benchmark.py stats-null [--simulations 1000] [--json F]
    python pipelines/benchmark.py stats-coverage [--simulations 1000] [--json F]
    python pipelines/benchmark.py all --json benchmark.json

"bare" times the model step alone on tensors already in memory (forward, loss, backward,
optimizer step); "loop" times the same number of steps through the project's own training loop
(data loader, augmentation, host-to-device copies included). ``loop / bare`` close to 1 means
data handling is not the bottleneck. "loader" times the segmentation loader alone (the
training split's augmentation at the config's sizes, batches of ``freeze_batch_size``, over
``--epochs`` epochs of ``--loader-images`` generated images, a worker's start included), each
change of segmentation/data.py on its own (:data:`LOADER_VARIANTS`): float32 image and int64
label made in the worker with a loader made again every epoch (as before), the image and then
the label left uint8, persistent workers, one OpenCV thread; for each worker count, images/s in
all and per worker and the CPU milliseconds the workers spend per image (what sets the rate of
a node with more cores: ``1000 / ms`` images/s per worker). On a GPU the batch is normalised on
the device as in training; on a CPU it is not (the main process would take the workers' cores)
and its cost per batch is printed beside. "stats" times the report's intervals and
comparisons (segmentation.statistics) on generated per-image confusion matrices of the given shape (the
default is the paper's Table 2: 14 rows, 3 seeds, MSRS's 361 test images). "stats-null" is no
timing: it prints the false-positive rate of the report's comparisons on pairs of rows equal by
construction (segmentation.statistics.simulate_null_pair: 60 images; 3 and 5 seeds; seed noise
equal to and three times the image noise), which should be at most about 5%. "stats-coverage"
is no timing either: on test sets of 40-60 images drawn from a street-scene population with rare
classes (segmentation.statistics.coverage), one and three seeds, it prints how often a row's
95% interval and the interval of a paired difference cover the population's value (the mIoU
over the classes the test set holds: what the report estimates; beside it, over all nine), and
where the point estimate sits inside them (0.5 = the middle); its last line reads
``coverage row X %, difference Y %`` (one seed).

Runs on whatever device the config's runtime picks (CUDA if present); ``--amp off|bf16|fp16``
compares mixed precision. Synthetic scenes of the requested size are generated in a temporary
folder, so the benchmark needs no dataset. Prints the figures and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import _common
import numpy as np
import torch

from msrs.synthetic import write_synthetic
from runtime.device import pick_device, setup_runtime
from runtime.distributed import Dist
from runtime.files import write_json_atomic
from runtime.precision import resolve_precision
from runtime.training import amp_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per call of ``step`` after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    _sync(device)
    tick = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - tick) / steps


def bench_segmentation(config, data_root: Path, device, steps: int, warmup: int) -> dict:
    from runtime.device import cpu_share
    from segmentation.data import (
        AugmentedSplit,
        load_split,
        loader_workers,
        normalise,
        train_transform,
        training_crop,
        training_loader,
    )
    from segmentation.losses import DiceCELoss
    from segmentation.model import model_from_config
    from segmentation.train import train_one_epoch

    seg = config.segmentation
    precision = resolve_precision(config.runtime, device)
    images, labels, _ = load_split(data_root, "train", "visible")
    crop = training_crop(seg, images.shape[1:3])
    dataset = AugmentedSplit(images, labels, train_transform(crop, seg.scale_range), config.seed)
    batch = seg.batch_size
    torch.manual_seed(config.seed)
    model = model_from_config(seg)
    model = model.to(device).train()
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = DiceCELoss(seg.dice_weight, seg.ce_weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = precision.make_scaler(device)
    x, y = next(iter(torch.utils.data.DataLoader(dataset, batch_size=batch)))
    x, y = normalise(x.to(device)), y.to(device).long()
    if precision.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def bare():
        with precision.autocast(device):
            loss = criterion(model(x), y)
        amp_step(loss, optimizer, scaler)

    bare_s = _timed(bare, steps, warmup, device)
    # the loop as segmentation.train runs it: its loader (workers, pinned memory) and its step
    workers = loader_workers(seg.num_workers, device, cpu_share(config.runtime))
    sampler = torch.utils.data.RandomSampler(dataset, generator=torch.Generator().manual_seed(0))
    loader = training_loader(dataset, batch, sampler, workers, precision.pin_memory)
    train_one_epoch(model, _take(loader, warmup), criterion, optimizer, scaler, precision, device)
    _sync(device)
    tick = time.perf_counter()
    seen = train_one_epoch(
        model, _take(loader, steps), criterion, optimizer, scaler, precision, device
    ).images
    _sync(device)
    loop_s = (time.perf_counter() - tick) / (seen / batch)
    return _figures(
        "segmentation training", batch, crop, bare_s, loop_s, precision, encoder=seg.encoder, workers=workers
    )


LOADER_VARIANTS = (  # (name, image, label, persistent workers, one OpenCV thread)
    ("before: float32 image, int64 label, loader made every epoch", "float", "int64", False, False),
    ("uint8 image (normalised on the device)", "uint8", "int64", False, False),
    ("uint8 image and label", "uint8", "uint8", False, False),
    ("uint8, persistent workers", "uint8", "uint8", True, False),
    ("uint8, persistent, one OpenCV thread (now: training_loader)", "uint8", "uint8", True, True),
)


def _cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU seconds of these processes so far (Linux /proc; None elsewhere)."""
    try:
        fields = [open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split() for pid in pids]
    except OSError:
        return None
    return sum(int(f[11]) + int(f[12]) for f in fields) / os.sysconf("SC_CLK_TCK")


def bench_loader(config, data_root: Path, device, workers: list[int], epochs: int) -> list[dict]:
    """Images/s of the segmentation training loader for each of :data:`LOADER_VARIANTS` and
    worker count (module docstring), and the CPU milliseconds a worker spends per image."""
    import cv2

    from segmentation.data import (
        AugmentedSplit,
        load_split,
        normalise,
        rare_classes,
        to_tensor,
        train_transform,
        training_crop,
        training_loader,
    )

    class Samples(AugmentedSplit):  # the variants' sample types
        def __init__(self, *args, image: str, label: str):
            super().__init__(*args)
            self.image, self.label = image, label

        def __getitem__(self, index):
            image, label = super().__getitem__(index)
            image = to_tensor(image.numpy()) if self.image == "float" else image
            return image, label.long() if self.label == "int64" else label

    seg = config.segmentation
    precision = resolve_precision(config.runtime, device)
    tick = time.perf_counter()
    images, labels, _ = load_split(data_root, "train", "visible")
    decode_s = (time.perf_counter() - tick) / len(images)
    crop = training_crop(seg, images.shape[1:3])
    transform = train_transform(crop, seg.scale_range, seg.rare_crop_fraction, rare_classes(labels))
    batch = seg.freeze_batch_size
    sample = torch.zeros((batch, *crop, 3), dtype=torch.uint8, device=device)
    normalise_ms = _timed(lambda: normalise(sample), 5, 1, device) * 1000
    on_device = device.type == "cuda"  # on a CPU the main process would normalise on the workers' cores
    results = []
    for count in workers:
        for name, image, label, persistent, one_thread in LOADER_VARIANTS:
            if count == 0 and (persistent or one_thread):
                continue  # no worker processes: nothing to set
            cv2.setNumThreads(-1)  # OpenCV's default for each variant; training_loader may set 1
            dataset = Samples(images, labels, transform, 0, image=image, label=label)
            sampler = torch.utils.data.RandomSampler(dataset, generator=torch.Generator().manual_seed(0))

            def make_loader(dataset=dataset, sampler=sampler, count=count, keep=persistent, one=one_thread):
                if one:
                    return training_loader(dataset, batch, sampler, count, precision.pin_memory)
                return torch.utils.data.DataLoader(
                    dataset,
                    batch_size=batch,
                    sampler=sampler,
                    drop_last=True,
                    num_workers=count,
                    pin_memory=precision.pin_memory,
                    persistent_workers=keep and count > 0,
                )

            loader, seen, first, worker_cpu = make_loader(), 0, None, 0.0
            tick = time.perf_counter()
            for epoch in range(epochs):
                dataset.set_epoch(epoch)
                if epoch and not persistent:
                    loader = make_loader()
                batches = iter(loader)
                pids = [w.pid for w in getattr(batches, "_workers", [])]
                start_cpu = last_cpu = _cpu_seconds(pids) if pids else None
                for x, y in batches:
                    x, y = x.to(device, non_blocking=precision.pin_memory), y.to(device).long()
                    x = normalise(x) if image == "uint8" and on_device else x
                    seen += len(x)
                    first = first if first is not None else time.perf_counter() - tick
                    last_cpu = _cpu_seconds(pids) if start_cpu is not None else None  # before they exit
                if start_cpu is not None and last_cpu is not None:
                    worker_cpu += last_cpu - start_cpu
            _sync(device)
            rate = seen / (time.perf_counter() - tick)
            worker_ms = round(worker_cpu / seen * 1000, 2) if count and worker_cpu else None
            results.append(
                {
                    "benchmark": "segmentation loader",
                    "variant": name,
                    "workers": count,
                    "batch": batch,
                    "images_per_epoch": len(dataset) // batch * batch,
                    "epochs": epochs,
                    "size": list(crop),
                    "scale_range": list(seg.scale_range),
                    "images_per_second": round(rate, 1),
                    "images_per_second_per_worker": round(rate / max(count, 1), 1),
                    "worker_cpu_ms_per_image": worker_ms,
                    "first_batch_seconds": round(first, 3),
                    "normalise_on_device": on_device,
                    "normalise_ms_per_batch": round(normalise_ms, 2),
                    "png_decode_seconds_per_image": round(decode_s, 4),
                    "pin_memory": precision.pin_memory,
                }
            )
            print(
                f"{count} worker(s), {name}: {rate:.1f} images/s"
                + (f", {worker_ms} CPU ms per image in the workers" if worker_ms else ""),
                flush=True,
            )
    return results


def _take(loader, steps: int):
    """The first ``steps`` batches of a loader that is re-iterated as often as needed."""
    count = 0
    while True:
        for batch in loader:
            if count == steps:
                return
            count += 1
            yield batch


def bench_fusion_train(config, data_root: Path, device, steps: int, warmup: int) -> dict:
    """SSPFusion's fusion phase: the bare step, and the loop of fusion/training.py (its loader,
    its precision policy and its device-side loss sums)."""
    from fusion.data import crops, make_loader, training_pairs
    from fusion.methods.learned import recipe
    from fusion.training import LossStep, run_epoch, start_phase

    fus = config.fusion
    precision = resolve_precision(config.runtime, device)
    torch.manual_seed(config.seed)
    sspfusion = recipe("sspfusion")
    model = sspfusion.build_model(fus).to(device).train()
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    phase = next(p for p in sspfusion.phases(fus) if p.name == "fusion")
    optimizer = start_phase(model, phase)
    scaler = precision.make_scaler(device)
    step = LossStep(model, phase, precision, device)
    _, irs, vis = training_pairs(data_root, fus.max_pairs)
    loader = make_loader(
        crops(phase.augment, irs, vis, fus.crop_size, config.seed), fus.batch_size, Dist(), 0, 0
    )
    ir, vi = (precision.memory_format(t.to(device)) for t in next(iter(loader)))

    def bare():
        amp_step(step(ir, vi)[0], optimizer, scaler)

    bare_s = _timed(bare, steps, warmup, device)
    run_epoch(step, _take(loader, warmup), optimizer, scaler, precision, device)
    _sync(device)
    tick = time.perf_counter()
    seen = run_epoch(step, _take(loader, steps), optimizer, scaler, precision, device).images
    _sync(device)
    loop_s = (time.perf_counter() - tick) / (seen / fus.batch_size)
    return _figures(
        "fusion training",
        fus.batch_size,
        (fus.crop_size, fus.crop_size),
        bare_s,
        loop_s,
        precision,
        channels=list(fus.channels),
    )


def bench_fusion_infer(config, size: tuple[int, int], device, steps: int, warmup: int) -> dict:
    """Fusing one pair with SSPFusion as the fuse stage does (fusion.methods.learned's
    luminance_method: float32 luminance in and out, copies to and from the device included,
    no autocast)."""
    from fusion.methods.learned import luminance_method, recipe

    torch.manual_seed(config.seed)
    sspfusion = recipe("sspfusion")
    model = sspfusion.build_model(config.fusion).to(device).eval()
    method = luminance_method("sspfusion", lambda ir, vi: sspfusion.fuse(model, ir, vi), device, __file__)
    rng = np.random.default_rng(0)
    ir, vi = (rng.random(size, dtype=np.float32) for _ in range(2))
    seconds = _timed(lambda: method.fuse_y(ir, vi, **method.params), steps, warmup, device)
    return {
        "benchmark": "fusion inference",
        "size": list(size),
        "ms_per_image": seconds * 1000,
        "images_per_second": 1 / seconds,
        "amp": "off",
        "paper_ms_per_image": 149.7,
        "channels": list(config.fusion.channels),
    }


def bench_statistics(rows: int, seeds: int, images: int, seed: int) -> dict:
    from msrs.classes import NUM_CLASSES
    from segmentation.statistics import RowEvidence, compare_rows

    rng = np.random.default_rng(seed)
    shape = (seeds, images, NUM_CLASSES, NUM_CLASSES)
    evidence = []
    for row in range(rows):  # off-diagonal noise plus a diagonal that grows with the row
        confusion = rng.integers(0, 2000, shape, dtype=np.int64)
        diagonal = np.arange(NUM_CLASSES)
        confusion[:, :, diagonal, diagonal] += rng.integers(0, 20000 + 500 * row, shape[:3])
        evidence.append(
            RowEvidence(
                f"row{row}",
                list(range(seeds)),
                confusion.astype(np.uint32),
                [f"{i:05d}" for i in range(images)],
            )
        )
    tick = time.perf_counter()
    compare_rows(evidence)
    seconds = time.perf_counter() - tick
    return {
        "benchmark": "statistics",
        "rows": rows,
        "seeds": seeds,
        "images": images,
        "seconds": seconds,
        "threads": torch.get_num_threads(),
    }


def null_rates(simulations: int, seed: int) -> list[dict]:
    from segmentation.statistics import null_false_positive_rate

    return [
        {
            "benchmark": "statistics-null",
            "images": 60,
            "seeds": seeds,
            "seed_noise_over_image_noise": noise,
            "simulations": simulations,
            "false_positive_rate": null_false_positive_rate(simulations, 60, seeds, noise, seed),
        }
        for seeds in (3, 5)
        for noise in (1.0, 3.0)
    ]


def coverage_rates(simulations: int, seed: int) -> list[dict]:
    """Coverage and centring of the report's intervals, one and three seeds; prints them and,
    last, ``coverage row X %, difference Y %`` of one seed."""
    from segmentation.statistics import coverage

    results = []
    for seeds in (3, 1):
        result = {"benchmark": "statistics-coverage", **coverage(simulations, seeds, seed)}
        print(
            f"{seeds} seed(s): row interval covers {result['row_coverage']:.1%} "
            f"(estimate at {result['row_estimate_position']:.2f} of it), difference "
            f"{result['difference_coverage']:.1%} (at {result['difference_estimate_position']:.2f}); "
            f"of the mIoU over all nine classes {result['row_coverage_all_classes']:.1%} and "
            f"{result['difference_coverage_all_classes']:.1%} ({result['missing_class']:.0%} of the "
            "test sets miss a class)"
        )
        results.append(result)
    one = results[-1]
    print(f"coverage row {one['row_coverage']:.1%}, difference {one['difference_coverage']:.1%}")
    return results


def _figures(name, batch, size, bare_s, loop_s, precision, **extra) -> dict:
    return {
        "benchmark": name,
        "batch": batch,
        "size": list(size),
        "bare_images_per_second": batch / bare_s,
        "loop_images_per_second": batch / loop_s,
        "loop_over_bare": bare_s / loop_s,
        "amp": precision.amp_dtype_name,
        **extra,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what",
        choices=[
            "seg",
            "loader",
            "fusion-train",
            "fusion-infer",
            "stats",
            "stats-null",
            "stats-coverage",
            "all",
        ],
    )
    _common.add_config_args(parser)
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="image size of the generated scenes (default: the config's)",
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--amp", choices=["auto", "off", "bf16", "fp16"])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--rows", type=int, default=14, help="stats: Table 2 rows")
    parser.add_argument("--seeds", type=int, default=3, help="stats: seeds per row")
    parser.add_argument("--images", type=int, default=361, help="stats: test images")
    parser.add_argument(
        "--simulations", type=int, default=1000, help="stats-null, stats-coverage: simulations per setting"
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[0, 1, 2], help="loader: worker processes to time"
    )
    parser.add_argument(
        "--loader-images", type=int, default=96, help="loader: generated training images (one epoch)"
    )
    parser.add_argument("--epochs", type=int, default=3, help="loader: epochs timed")
    args = parser.parse_args()
    config = _common.config_from_args(args)
    if args.amp:
        config.runtime.amp = args.amp
    setup_runtime(config.runtime)
    device = pick_device(config.runtime.device)
    synthetic = config.data.synthetic
    size = tuple(args.size) if args.size else (synthetic.height, synthetic.width)
    results = []
    if args.what in ("stats", "all"):
        results.append(bench_statistics(args.rows, args.seeds, args.images, config.seed))
    if args.what == "stats-null":
        results += null_rates(args.simulations, config.seed)
    if args.what == "stats-coverage":
        results += coverage_rates(args.simulations, config.seed)
    if args.what not in ("stats", "stats-null", "stats-coverage"):  # the others train on generated scenes
        with tempfile.TemporaryDirectory() as tmp:
            count = max(config.segmentation.batch_size, config.fusion.batch_size) * 4
            count = args.loader_images if args.what == "loader" else count
            data_root = write_synthetic(
                Path(tmp) / "data", train=count, test=2, height=size[0], width=size[1], seed=config.seed
            )
            if args.what == "loader":
                results += bench_loader(config, data_root, device, args.workers, args.epochs)
            if args.what in ("seg", "all"):
                if args.size:  # train at the requested size; otherwise at the config's crops
                    config.segmentation.crop = list(size)
                results.append(bench_segmentation(config, data_root, device, args.steps, args.warmup))
            if args.what in ("fusion-train", "all"):
                results.append(bench_fusion_train(config, data_root, device, args.steps, args.warmup))
            if args.what in ("fusion-infer", "all"):
                infer_size = tuple(args.size) if args.size else (480, 640)
                results.append(
                    bench_fusion_infer(config, infer_size, device, max(args.steps // 2, 3), args.warmup)
                )
    machine = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "config": Path(args.config).name,
    }
    for result in results:
        print(json.dumps(result))
    if args.json:
        write_json_atomic(args.json, {"machine": machine, "results": results})
    return 0


if __name__ == "__main__":
    _common.run_main(main)
