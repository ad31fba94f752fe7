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

from configs.schema import load_config
from msrs.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from msrs.layout import DataError
from segmentation.data import AugmentedSplit, load_split, train_transform
from segmentation.evaluate import confusion_matrix, scores
from segmentation.losses import DiceCELoss
from segmentation.model import build_model, check_encoder, set_encoder_frozen, set_train_mode
from segmentation.schedule import learning_rate, phase_batch
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
    prediction = torch.where(torch.rand(target.shape, generator=generator) < 0.6,
                             target.clamp(max=NUM_CLASSES - 1),
                             torch.randint(0, NUM_CLASSES, target.shape, generator=generator))
    ours = scores(confusion_matrix(prediction, target))
    metric = MulticlassJaccardIndex(NUM_CLASSES, average=None, ignore_index=IGNORE_INDEX)
    reference = metric(prediction, target).numpy() * 100
    np.testing.assert_allclose([ours["per_class_iou"][n] for n in CLASS_NAMES], reference,
                               rtol=1e-6)
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
    from configs.distributed import resolve_precision
    precision = resolve_precision(config.runtime, torch.device("cpu"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    train_one_epoch(model, loader, DiceCELoss(), optimizer, precision.make_scaler(
        torch.device("cpu")), precision, torch.device("cpu"))
    for key, value in model.encoder.state_dict().items():  # weights and BN running stats
        assert torch.equal(value, before[key]), f"encoder {key} changed while frozen"
    assert all(p.grad is None for p in model.encoder.parameters())
    assert not all(torch.equal(v, decoder_before[k]) for k, v in model.decoder.state_dict().items())
    assert not any(id(p) in encoder_ids for p in optimizer.state)

    # the anchor-code variant lets the "frozen" encoder's BatchNorm statistics move
    set_train_mode(model, frozen=True, frozen_bn_updates=True)
    train_one_epoch(model, loader, DiceCELoss(), optimizer, precision.make_scaler(
        torch.device("cpu")), precision, torch.device("cpu"))
    moved = [k for k, v in model.encoder.state_dict().items() if "running_mean" in k
             and not torch.equal(v, before[k])]
    assert moved
    set_encoder_frozen(model, False)
    assert all(p.requires_grad for p in model.encoder.parameters())


def test_schedule_phases_and_cosine():
    seg = tiny_config(epochs=10, freeze_epochs=4, freeze_batch_size=8, batch_size=4, lr=7e-3,
                      min_lr_ratio=0.01).segmentation
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
    straight = train_segmentation(config, synthetic_root, "visible", tmp_path / "a", seed=3,
                                  progress=False)
    assert set(straight["per_class_iou"]) == set(CLASS_NAMES)
    for name in ("model.pt", "metrics.json", "history.csv", "checkpoint.pt"):
        assert (tmp_path / "a" / name).is_file()
    assert len(list((tmp_path / "a" / "predictions").glob("*.png"))) == 2
    history = pd.read_csv(tmp_path / "a" / "history.csv")
    assert list(history["phase"]) == ["frozen", "full", "full"]
    assert {"loss", "lr", "val_miou"} <= set(history.columns)
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    for key in ("per_class_iou", "miou", "pixel_accuracy", "identity", "seed", "epochs",
                "wall_seconds", "device", "precision"):
        assert key in saved

    partial = train_segmentation(config, synthetic_root, "visible", tmp_path / "b", seed=3,
                                 progress=False, stop_after=2)  # killed after the unfreeze
    assert partial == {"stopped_after_epoch": 2}
    resumed = train_segmentation(config, synthetic_root, "visible", tmp_path / "b", seed=3,
                                 resume=True, progress=False)
    assert resumed["per_class_iou"] == straight["per_class_iou"]
    assert resumed["miou"] == straight["miou"]
    assert saved["device"] == "cpu" and saved["precision"] == "fp32"
    with pytest.raises(ValueError, match="written by a run of identity None, not other"):
        train_segmentation(config, synthetic_root, "visible", tmp_path / "b", seed=3,
                           resume=True, progress=False, identity="other")


def test_decoder_width_is_a_config_value_kept_in_the_saved_model(synthetic_root, tmp_path):
    config = tiny_config(epochs=1, freeze_epochs=0, decoder_channels=32)
    train_segmentation(config, synthetic_root, "visible", tmp_path / "run", seed=0,
                       progress=False)
    model = load_trained(tmp_path / "run" / "model.pt")
    assert model.decoder.aspp[0].convs[0][0].out_channels == 32
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
        [sys.executable, str(REPO / "pipelines" / "train_segmentation.py"), "--config", str(TINY),
         "--input", "infrared", "--data-root", str(synthetic_root), "--out", str(tmp_path / "ir"),
         "--no-progress", "--set", "segmentation.epochs=2"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "person" in result.stdout and "mIoU" in result.stdout

    bad = subprocess.run(
        [sys.executable, str(REPO / "pipelines" / "train_segmentation.py"), "--config", str(TINY),
         "--input", "visible", "--data-root", str(synthetic_root), "--out", str(tmp_path / "x"),
         "--set", "segmentation.encoder=resnet1000"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: unknown encoder 'resnet1000'")
    assert len(bad.stderr.strip().splitlines()) == 1
