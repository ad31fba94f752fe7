"""Segmentation stage: frozen phase, IoU against torchmetrics, resume equality, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from configs.schema import ConfigError, check_frozen_encoder_is_trained, load_config
from msrs.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from msrs.layout import DataError
from pipelines.engine import RunLayout, build_plan, environment
from segmentation.data import (
    PAD_FILL,
    AugmentedSplit,
    holdout,
    load_split,
    to_tensor,
    train_transform,
    training_loader,
)
from segmentation.evaluate import confusion_matrix, scores
from segmentation.losses import DiceCELoss
from segmentation.model import (
    aspp_rates,
    build_model,
    check_encoder,
    model_from_config,
    set_encoder_frozen,
    set_train_mode,
)
from segmentation.schedule import learning_rate, phase_batch
from segmentation.summary import recipe_summary
from segmentation.train import _optimizer, load_trained, train_one_epoch, train_segmentation
from tests.conftest import REPO

TINY = REPO / "configs" / "tiny.yaml"


def tiny_config(**segmentation):
    config = load_config(TINY)
    for key, value in segmentation.items():
        setattr(config.segmentation, key, value)
    return config


def test_confusion_matrix_matches_torchmetrics():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, NUM_CLASSES, (4, 30, 40), generator=generator)
    target[:, :3] = IGNORE_INDEX
    prediction = torch.where(
        torch.rand(target.shape, generator=generator) < 0.6,
        target.clamp(max=NUM_CLASSES - 1),
        torch.randint(0, NUM_CLASSES, target.shape, generator=generator),
    )
    ours = scores(confusion_matrix(prediction, target))
    metric = MulticlassJaccardIndex(NUM_CLASSES, average=None, ignore_index=IGNORE_INDEX)
    reference = metric(prediction, target).numpy() * 100
    np.testing.assert_allclose([ours["per_class_iou"][n] for n in CLASS_NAMES], reference, rtol=1e-6)
    assert ours["miou"] == pytest.approx(reference.mean(), rel=1e-6)


def test_absent_class_is_nan_and_left_out_of_the_mean():
    target = torch.tensor([[0, 0, 1, 1]])
    ours = scores(confusion_matrix(target.clone(), target))
    assert ours["per_class_iou"]["background"] == 100 and ours["per_class_iou"]["car"] == 100
    assert ours["per_class_iou"]["person"] is None
    assert ours["miou"] == 100 and "person" in ours["absent_classes"]
    assert "excluded from the mean" in ours["note"]


def test_loss_ignores_label_255():
    logits = torch.randn(2, NUM_CLASSES, 8, 8)
    labels = torch.randint(0, NUM_CLASSES, (2, 8, 8))
    noisy = labels.clone()
    noisy[:, :4] = IGNORE_INDEX
    other = noisy.clone()
    criterion = DiceCELoss()
    base = criterion(logits, noisy)
    logits2 = logits.clone()
    logits2[:, :, :4] = torch.randn(2, NUM_CLASSES, 4, 8) * 10  # only ignored pixels change
    assert criterion(logits2, other) == pytest.approx(base.item(), rel=1e-5)


def test_frozen_phase_really_freezes(synthetic_root):
    config = tiny_config()
    seg = config.segmentation
    torch.manual_seed(0)
    model = build_model(seg.encoder, None)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    optimizer = _optimizer(model, seg, frozen=True)
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    assert not any(id(p) in encoder_ids for group in optimizer.param_groups for p in group["params"])
    images, labels, _ = load_split(synthetic_root, "train", "visible")
    dataset = AugmentedSplit(images, labels, train_transform((48, 64), (0.5, 2.0)), 0)
    set_train_mode(model, frozen=True)
    from runtime.precision import resolve_precision

    precision = resolve_precision(config.runtime, torch.device("cpu"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    train_one_epoch(
        model,
        loader,
        DiceCELoss(),
        optimizer,
        precision.make_scaler(torch.device("cpu")),
        precision,
        torch.device("cpu"),
    )
    for key, value in model.encoder.state_dict().items():  # weights and BN running stats
        assert torch.equal(value, before[key]), f"encoder {key} changed while frozen"
    assert all(p.grad is None for p in model.encoder.parameters())
    assert not all(torch.equal(v, decoder_before[k]) for k, v in model.decoder.state_dict().items())
    assert not any(id(p) in encoder_ids for p in optimizer.state)

    # the anchor-code variant lets the "frozen" encoder's BatchNorm statistics move
    set_train_mode(model, frozen=True, frozen_bn_updates=True)
    train_one_epoch(
        model,
        loader,
        DiceCELoss(),
        optimizer,
        precision.make_scaler(torch.device("cpu")),
        precision,
        torch.device("cpu"),
    )
    moved = [
        k
        for k, v in model.encoder.state_dict().items()
        if "running_mean" in k and not torch.equal(v, before[k])
    ]
    assert moved
    set_encoder_frozen(model, False)
    assert all(p.requires_grad for p in model.encoder.parameters())


def test_schedule_phases_and_cosine():
    seg = tiny_config(
        epochs=10, freeze_epochs=4, freeze_batch_size=8, batch_size=4, lr=7e-3, min_lr_ratio=0.01
    ).segmentation
    assert [phase_batch(seg, e) for e in (0, 3, 4, 9)] == [8, 8, 4, 4]
    rates = [learning_rate(seg, e) for e in range(10)]
    assert rates[0] == pytest.approx(7e-3) and all(a > b for a, b in zip(rates, rates[1:], strict=False))
    seg.lr_batch_scaling = True
    assert learning_rate(seg, 0) == pytest.approx(7e-3 * 8 / 16)


def test_unknown_encoder_lists_valid_names():
    with pytest.raises(ValueError, match="unknown encoder 'resnet1000'.*mobilenet_v2"):
        check_encoder("resnet1000")


@pytest.mark.slow  # three trainings: the longest in-process test
def test_training_writes_outputs_and_resume_gives_identical_metrics(synthetic_root, tmp_path):
    config = tiny_config()
    straight = train_segmentation(config, synthetic_root, "visible", tmp_path / "a", seed=3, progress=False)
    assert set(straight["per_class_iou"]) == set(CLASS_NAMES)
    for name in ("model.pt", "metrics.json", "history.csv", "checkpoint.pt"):
        assert (tmp_path / "a" / name).is_file()
    assert len(list((tmp_path / "a" / "predictions").glob("*.png"))) == 2
    history = pd.read_csv(tmp_path / "a" / "history.csv")
    assert list(history["phase"]) == ["frozen", "full", "full"]
    assert {"loss", "lr", "test_miou"} <= set(history.columns)
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    for key in (
        "per_class_iou",
        "miou",
        "pixel_accuracy",
        "identity",
        "seed",
        "epochs",
        "wall_seconds",
        "device",
        "precision",
    ):
        assert key in saved

    partial = train_segmentation(
        config, synthetic_root, "visible", tmp_path / "b", seed=3, progress=False, stop_after=2
    )  # killed after the unfreeze
    assert partial == {"stopped_after_epoch": 2}
    resumed = train_segmentation(
        config, synthetic_root, "visible", tmp_path / "b", seed=3, resume=True, progress=False
    )
    assert resumed["per_class_iou"] == straight["per_class_iou"]
    assert resumed["miou"] == straight["miou"]
    assert saved["device"] == "cpu" and saved["precision"] == "fp32"
    with pytest.raises(ValueError, match="written by a run of identity None, not other"):
        train_segmentation(
            config,
            synthetic_root,
            "visible",
            tmp_path / "b",
            seed=3,
            resume=True,
            progress=False,
            identity="other",
        )


def test_decoder_width_is_a_config_value_kept_in_the_saved_model(synthetic_root, tmp_path):
    config = tiny_config(epochs=1, freeze_epochs=0, decoder_channels=32)
    train_segmentation(config, synthetic_root, "visible", tmp_path / "run", seed=0, progress=False)
    model, _ = load_trained(tmp_path / "run" / "model.pt")
    assert model.decoder.aspp[0].convs[0][0].out_channels == 32
    assert aspp_rates(model) == [6, 12, 18]
    assert build_model("mobilenet_v2").decoder.aspp[0].convs[0][0].out_channels == 256


def test_fused_folder_missing_names_and_wrong_size(synthetic_root, tmp_path):
    fused = tmp_path / "fused"
    for split in ("train", "test"):
        shutil.copytree(synthetic_root / split / "vi", fused / split)
    (fused / "test" / sorted(p.name for p in (fused / "test").iterdir())[0]).unlink()
    with pytest.raises(DataError, match=r"missing 1 of 10 fused images"):
        load_split(synthetic_root, "test", "fused:x", fused / "test")
    from PIL import Image

    first = sorted((fused / "train").iterdir())[0]
    Image.new("RGB", (10, 12)).save(first)
    with pytest.raises(DataError, match=rf"{first.name}.*10x12.*label"):
        load_split(synthetic_root, "train", "fused:x", fused / "train")


@pytest.mark.slow
def test_cli_trains_and_prints_table(synthetic_root, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "pipelines" / "train_segmentation.py"),
            "--config",
            str(TINY),
            "--input",
            "infrared",
            "--data-root",
            str(synthetic_root),
            "--out",
            str(tmp_path / "ir"),
            "--no-progress",
            "--set",
            "segmentation.epochs=2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "person" in result.stdout and "mIoU" in result.stdout
    metrics = tmp_path / "ir" / "segmentation" / "infrared" / "seed0" / "metrics.json"
    assert json.loads(metrics.read_text())["colour"] == "grey"

    bad = subprocess.run(
        [
            sys.executable,
            str(REPO / "pipelines" / "train_segmentation.py"),
            "--config",
            str(TINY),
            "--input",
            "visible",
            "--data-root",
            str(synthetic_root),
            "--out",
            str(tmp_path / "x"),
            "--set",
            "segmentation.encoder=resnet1000",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: segmentation.encoder: unknown encoder 'resnet1000'")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_atrous_rates_reach_the_aspp_module():
    paper = load_config(REPO / "configs" / "paper.yaml").segmentation
    assert (paper.output_stride, paper.atrous_rates) == (16, [6, 12, 18])
    model = model_from_config(paper)
    assert aspp_rates(model) == [6, 12, 18] and model.encoder.output_stride == 16
    stride8 = load_config(
        REPO / "configs" / "paper.yaml",
        ["segmentation.output_stride=8", "segmentation.atrous_rates=[12,24,36]"],
    )
    model = model_from_config(stride8.segmentation)
    assert aspp_rates(model) == [12, 24, 36] and model.encoder.output_stride == 8
    with pytest.raises(ConfigError, match="atrous_rates"):
        load_config(REPO / "configs" / "paper.yaml", ["segmentation.atrous_rates=[6,12]"])


def test_holdout_is_seeded_deterministic_and_disjoint():
    names = [f"{i:05d}{'DN'[i % 2]}" for i in range(1083)]
    train, val = holdout(names, 0.099, seed=0)
    assert (len(train), len(val)) == (976, 107)  # the paper's Table 2 counts
    assert not set(train) & set(val) and sorted([*train, *val]) == list(range(1083))
    again_train, again_val = holdout(names, 0.099, seed=0)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    shuffled = list(np.random.default_rng(5).permutation(names))  # listing order does not matter
    assert {shuffled[i] for i in holdout(shuffled, 0.099, 0)[1]} == {names[i] for i in val}
    assert not np.array_equal(holdout(names, 0.099, seed=1)[1], val)
    assert len(holdout(names, 0.0, 0)[1]) == 0
    with pytest.raises(ValueError, match="leaves 0 for validation"):
        holdout(names[:4], 0.1, 0)


def test_validation_split_and_lowest_val_loss_model(synthetic_root, tmp_path):
    config = tiny_config(
        epochs=3,
        freeze_epochs=1,
        val_fraction=0.25,
        reported_model="lowest_val_loss",
        batch_size=6,
        freeze_batch_size=6,
    )
    metrics = train_segmentation(config, synthetic_root, "visible", tmp_path / "run", seed=1, progress=False)
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert (len(split["train"]), len(split["val"])) == (18, 6)
    assert not set(split["train"]) & set(split["val"])
    _, _, names = load_split(synthetic_root, "train", "visible")
    assert [names[i] for i in holdout(names, 0.25, 0)[1]] == split["val"]
    assert (metrics["train_images"], metrics["val_images"]) == (18, 6)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["val_loss"].notna().all()
    assert metrics["reported_epoch"] == int(history["epoch"][history["val_loss"].idxmin()])
    reported = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["model"]
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(reported[k], best[k]) for k in best)


def test_anchor_schedule_matches_the_anchor_formulas():
    """A table written from the anchor code's train.py and yolox_warm_cos_lr, epoch by epoch."""
    import math

    def yolox_warm_cos_lr(lr, min_lr, total, warmup_total, warmup_lr_start, no_aug, iters):
        if iters <= warmup_total:
            return (lr - warmup_lr_start) * pow(iters / float(warmup_total), 2) + warmup_lr_start
        if iters >= total - no_aug:
            return min_lr
        return min_lr + 0.5 * (lr - min_lr) * (
            1.0 + math.cos(math.pi * (iters - warmup_total) / (total - warmup_total - no_aug))
        )

    init_lr, min_lr, nbs, total = 7e-3, 7e-3 * 0.01, 16, 340
    table = []
    for epoch in range(total):
        batch = 8 if epoch < 100 else 4
        lr_fit = min(max(batch / nbs * init_lr, 5e-4), 1e-1)
        min_fit = min(max(batch / nbs * min_lr, 5e-4 * 1e-2), 1e-1 * 1e-2)
        table.append(
            yolox_warm_cos_lr(
                lr_fit,
                min_fit,
                total,
                min(max(0.1 * total, 1), 3),
                max(0.1 * lr_fit, 1e-6),
                min(max(0.3 * total, 1), 15),
                epoch,
            )
        )
    seg = load_config(REPO / "configs" / "paper-anchor.yaml").segmentation
    ours = [learning_rate(seg, epoch) for epoch in range(total)]
    np.testing.assert_allclose(ours, table, rtol=1e-12)
    assert ours[0] == pytest.approx(3.5e-4) and ours[3] == pytest.approx(3.5e-3)
    assert ours[99] == pytest.approx(2.79e-3, rel=2e-3) and ours[100] == pytest.approx(1.39e-3, rel=2e-3)
    assert ours[325:] == [pytest.approx(1.75e-5)] * 15
    assert (seg.keep_optimizer, seg.nesterov, seg.weight_decay, seg.frozen_bn_updates) == (
        True,
        True,
        1e-4,
        True,
    )


def test_paper_anchor_extends_paper():
    paper = load_config(REPO / "configs" / "paper.yaml")
    anchor = load_config(REPO / "configs" / "paper-anchor.yaml")
    assert anchor.name == "paper-anchor" and anchor.fusion == paper.fusion
    assert anchor.methods == paper.methods and anchor.segmentation.epochs == 340


def test_kept_optimizer_spans_the_unfreeze_and_resumes_exactly(synthetic_root, tmp_path):
    config = tiny_config(epochs=2, freeze_epochs=1, keep_optimizer=True)
    straight = train_segmentation(config, synthetic_root, "visible", tmp_path / "a", seed=2, progress=False)
    train_segmentation(
        config, synthetic_root, "visible", tmp_path / "b", seed=2, progress=False, stop_after=1
    )
    frozen_state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["optimizer"]
    model = model_from_config(config.segmentation)
    encoder_count = len(list(model.encoder.parameters()))
    assert len(frozen_state["param_groups"][0]["params"]) == len(list(model.parameters()))
    assert len(frozen_state["state"]) == len(list(model.parameters())) - encoder_count
    resumed = train_segmentation(
        config, synthetic_root, "visible", tmp_path / "b", seed=2, resume=True, progress=False
    )
    assert resumed["miou"] == straight["miou"]


def test_freezing_a_random_encoder_needs_an_opt_in(synthetic_root, tmp_path):
    path = tmp_path / "frozen.yaml"
    path.write_text("segmentation:\n  encoder_weights: null\n  freeze_epochs: 5\n")
    config = load_config(path)  # loads: a config may never train segmentation
    message = "randomly initialised encoder.*freeze_random_encoder"
    with pytest.raises(ConfigError, match=message):
        check_frozen_encoder_is_trained(config.segmentation)
    with pytest.raises(ConfigError, match=message):  # before any data is read or model built
        train_segmentation(config, tmp_path / "no-data", "visible", tmp_path / "run", seed=0)
    with pytest.raises(ConfigError, match=message):  # run_all refuses the plan up front
        build_plan(config, RunLayout(tmp_path / "out"), synthetic_root, [], environment(config))
    for fix in (
        "segmentation.freeze_random_encoder=true",
        "segmentation.freeze_epochs=0",
        "segmentation.encoder_weights=imagenet",
    ):
        check_frozen_encoder_is_trained(load_config(path, [fix]).segmentation)


def test_padding_uses_the_normalisation_mean_and_ignore():
    image = np.full((20, 30, 3), 200, np.uint8)
    label = np.ones((20, 30), np.uint8)
    out = train_transform((40, 60), (0.5, 0.5))(image=image, mask=label)
    padded = out["mask"] == IGNORE_INDEX
    assert padded.mean() > 0.9 and (out["mask"][~padded] == 1).all()
    assert (out["image"][padded] == PAD_FILL).all()
    assert to_tensor(out["image"]).permute(1, 2, 0)[torch.from_numpy(padded)].abs().max() < 0.01


def test_summary_counts_and_lr(synthetic_root):
    paper = recipe_summary(load_config(REPO / "configs" / "paper.yaml"))
    assert paper["images"] == {"train": 976, "val": 107, "test": 361}
    assert (paper["output_stride"], paper["atrous_rates"]) == (16, [6, 12, 18])
    assert [row["epoch"] for row in paper["schedule"]] == [0, 1, 2, 99, 100, 101, 339]
    assert paper["schedule"][0]["lr"] == pytest.approx(7e-3)
    counted = recipe_summary(load_config(REPO / "configs" / "paper.yaml"), synthetic_root)
    assert counted["images"] == {"train": 22, "val": 2, "test": 10}
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "pipelines" / "train_segmentation.py"),
            "--config",
            str(REPO / "configs" / "paper-anchor.yaml"),
            "--summary",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "output stride 16, ASPP atrous rates (6, 12, 18)" in result.stdout
    assert "976 train, 107 validation" in result.stdout and "3.500e-04" in result.stdout


def test_summary_on_an_mfnet_root_uses_its_val_list(mfnet_root):
    config = load_config(REPO / "configs" / "mfnet-cpu.yaml")
    summary = recipe_summary(config, mfnet_root)
    assert summary["images"] == {"train": 18, "val": 6, "test": 10}
    assert summary["val_source"] == "the data root's val split"
    without = load_config(
        REPO / "configs" / "mfnet-cpu.yaml",
        ["segmentation.val_fraction=0", "segmentation.reported_model=last"],
    )
    assert recipe_summary(without, mfnet_root)["images"] == {"train": 24, "val": 0, "test": 10}


def test_samples_stay_uint8_and_normalise_repeats_the_float_arithmetic(synthetic_root):
    """Samples leave the loader as uint8 images and labels (the labels unchanged, the ignore
    label included); normalising on the device is the float arithmetic of a float sample."""
    from segmentation.data import IMAGENET_MEAN, IMAGENET_STD, normalise

    images, labels, _ = load_split(synthetic_root, "train", "visible")
    image, label = AugmentedSplit(images, labels, train_transform((48, 64), (0.5, 2.0)), 0)[3]
    assert image.dtype == torch.uint8 and image.shape == (48, 64, 3) and label.dtype == torch.uint8
    still = AugmentedSplit(images, labels, train_transform((48, 64), (1.0, 1.0)), 0)  # no rescale
    crops = [still[i][1] for i in range(len(images))]
    assert all(set(np.unique(c.numpy())) <= set(np.unique(labels)) | {IGNORE_INDEX} for c in crops)
    numpy = np.moveaxis((images[:4].astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD, -1, -3)
    assert torch.equal(normalise(torch.from_numpy(images[:4])), torch.from_numpy(np.ascontiguousarray(numpy)))


def test_persistent_workers_see_each_epoch(synthetic_root):
    """The epoch reaches worker processes that live across epochs (shared memory): their batches
    equal those made in the main process, epoch by epoch."""
    images, labels, _ = load_split(synthetic_root, "train", "visible")

    def batches(workers: int) -> list[torch.Tensor]:
        dataset = AugmentedSplit(images[:8], labels[:8], train_transform((48, 64), (0.5, 2.0)), 0)
        loader = training_loader(dataset, 8, None, workers, pin_memory=False)
        out = []
        for epoch in range(2):
            dataset.set_epoch(epoch)
            out += [x for x, _ in loader]
        return out

    here, there = batches(0), batches(1)
    assert not torch.equal(here[0], here[1])  # the epochs differ
    assert all(torch.equal(a, b) for a, b in zip(here, there, strict=True))


def test_workers_deliver_after_the_main_process_used_opencv_threads():
    """Workers forked just after the main process ran OpenCV's thread pool (as decoding and
    augmenting 480x640 images does) deliver every batch, and the main process is at one OpenCV
    thread when they fork. Setting the thread count inside each worker instead deadlocked 4 of
    12 such workers in a script here (not reliably inside pytest, hence the second check):
    segmentation/data.training_loader."""
    import cv2

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (4, 480, 640, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, (4, 480, 640), dtype=np.uint8)
    dataset = AugmentedSplit(images, labels, train_transform((480, 640), (0.5, 2.0)), 0)
    for _ in range(4):
        cv2.setNumThreads(-1)  # OpenCV's default, a thread per core, as at import
        [dataset[i] for i in range(len(dataset))]  # the pool at work in the main process
        loader = training_loader(dataset, 2, None, 1, pin_memory=False)
        loader.timeout = 30  # a deadlocked worker fails the test instead of hanging it
        assert [len(x) for x, _ in loader] == [2, 2]
        assert cv2.getNumThreads() == 1  # what the workers inherit
