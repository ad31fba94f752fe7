"""Train DeepLabV3+ on one input with the paper's two-phase recipe, then score the test split.

Recipe (paper 4.1, all values from ``SegmentationConfig``): SGD with momentum, cosine lr over all
epochs; the first ``freeze_epochs`` train with the encoder frozen at ``freeze_batch_size``, the
rest train everything at ``batch_size``. The optimizer is built per phase over the trainable
parameters only, so a frozen encoder has no gradient and no optimizer state; its BatchNorm
statistics stay fixed too (see ``segmentation.model.set_train_mode``). At the unfreeze boundary
a new optimizer starts (the decoder's momentum is not carried over); ``keep_optimizer`` instead
builds one SGD over all parameters for the whole run, as the anchor code does (frozen
parameters have no gradient, so SGD skips them until the unfreeze).

DECISION (the paper trains on 976 of MSRS's 1083 training images and says nothing of the other
107): ``val_fraction`` > 0 asks for a validation split, whose loss is measured after every
epoch. A data root with a validation split of its own (MFNet's ``val.txt``) gives it, and the
fraction is not applied; otherwise a seeded ``val_fraction`` of the training split is held out
(``holdout``). Either way the names are written to ``split.json``. Without a validation split
(``val_fraction: 0``) a root's own validation pairs are trained on with its training pairs.
``reported_model`` is the last epoch's model or the one of the lowest validation loss (the
anchor code's ``best_epoch_weights``). No model is ever chosen by its test-split score.

A checkpoint is written atomically after every epoch; ``resume=True`` continues from it. Each
epoch seeds its own shuffling, augmentation and dropout from (seed, epoch), so an interrupted and
resumed run ends with the same weights and metrics as an uninterrupted one on the CPU.

Under torchrun every rank takes 1/K of each global batch through a DistributedSampler over the
same permutation, BatchNorm is synchronised, the test split is sharded and the confusion
matrices summed; only rank 0 writes (runtime/distributed.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from configs.schema import ExperimentConfig, check_frozen_encoder_is_trained
from msrs.layout import VAL, DataError, root_splits
from runtime.checkpoints import load_checkpoint, resume_state, save_checkpoint, save_torch_atomic
from runtime.device import cpu_share, pick_device
from runtime.distributed import all_reduce_sum, barrier, init_distributed, per_rank_batch, unwrap, wrap_model
from runtime.files import write_json_atomic, write_text_atomic
from runtime.precision import resolve_precision
from runtime.progress import progress_bar
from runtime.training import LossSums, amp_step, begin_epoch, history_seconds, show_progress
from segmentation.data import (
    AugmentedSplit,
    colour_mode,
    holdout,
    load_split,
    loader_workers,
    normalise,
    rare_classes,
    rescale,
    train_transform,
    training_crop,
    training_loader,
)
from segmentation.evaluate import (
    CONFUSION_FILE,
    confusion_of_split,
    predict,
    prediction_image_indices,
    save_confusion_per_image,
    save_prediction_images,
    scores,
)
from segmentation.losses import DiceCELoss
from segmentation.model import (
    build_model,
    check_encoder,
    model_from_config,
    set_encoder_frozen,
    set_train_mode,
    trainable_parameters,
)
from segmentation.schedule import learning_rate, phase_batch


def _optimizer(model, config, frozen: bool) -> torch.optim.SGD:
    set_encoder_frozen(model, frozen)
    parameters = model.parameters() if config.keep_optimizer else trainable_parameters(model)
    return torch.optim.SGD(
        parameters,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov and config.momentum > 0,
        weight_decay=config.weight_decay,
    )


def _sharded_scores(
    model, images, labels, device, place, image_scale: float, precision
) -> tuple[dict, torch.Tensor]:
    """Scores of the test split and its per-image confusion matrices (N, C, C): each rank
    predicts and counts its shard on the device, and the ranks' rows are summed into one
    tensor; only the (C, C) total and the matrices come back to the host."""
    shard = torch.arange(place.rank, len(images), place.world_size)
    counted = confusion_of_split(
        unwrap(model), images[shard.numpy()], labels[shard.numpy()], device, 8, image_scale, precision
    )
    per_image = torch.zeros((len(images), *counted.shape[1:]), dtype=torch.int64, device=device)
    per_image[shard.to(device)] = counted
    per_image = all_reduce_sum(per_image, place).cpu()
    return scores(per_image.sum(0)), per_image


@torch.no_grad()
def validation_loss(model, criterion, images, labels, device, place, precision, batch_size: int) -> float:
    """Mean loss over the held-out images at full size, without augmentation, in fixed chunks of
    ``batch_size`` (chunk k on rank k mod K, so the value does not depend on K)."""
    model = unwrap(model).eval()
    height, width = images.shape[1:3]
    pad_h, pad_w = (-height) % 16, (-width) % 16
    total = torch.zeros(1, dtype=torch.float64, device=device)
    for chunk, start in enumerate(range(0, len(images), batch_size)):
        if chunk % place.world_size != place.rank:
            continue
        batch = normalise(torch.from_numpy(images[start : start + batch_size]).to(device))
        target = torch.from_numpy(labels[start : start + batch_size]).to(device).long()
        with precision.autocast(device):
            logits = model(precision.memory_format(F.pad(batch, (0, pad_w, 0, pad_h))))[..., :height, :width]
        total += criterion(logits.float(), target).double() * len(batch)
    return float(all_reduce_sum(total, place).item() / len(images))


def train_one_epoch(net, batches, criterion, optimizer, scaler, precision, device) -> LossSums:
    """One pass over ``batches`` of uint8 (N, H, W, 3) images and uint8 labels (a DataLoader, or a
    progress bar around one: images/second after every step, the loss after the last); the images
    are normalised and the labels widened on the device. The loss is summed on the device
    (``LossSums``): nothing in the step waits for the GPU. Returns this rank's sums."""
    sums, seen, tick = LossSums(device), 0, time.perf_counter()
    for step, (images, labels) in enumerate(batches, 1):
        images = normalise(images.to(device, non_blocking=precision.pin_memory))  # uint8 until here
        labels = labels.to(device, non_blocking=precision.pin_memory).long()
        with precision.autocast(device):
            loss = criterion(net(precision.memory_format(images)), labels)
        amp_step(loss, optimizer, scaler)
        sums.add({"loss": loss}, len(images))
        seen += len(images)
        show_progress(batches, sums, step, seen, tick)
    return sums


def _training_and_validation(data_root: Path, input_name: str, dirs: dict, seg, out_dir: Path, place):
    """(train images, train labels, val images, val labels, train names) as the module
    docstring's DECISION says; rank 0 writes the validation names to ``split.json``."""
    images, labels, names = load_split(data_root, "train", input_name, dirs.get("train"))
    if VAL in root_splits(data_root):
        val_images, val_labels, val_names = load_split(data_root, VAL, input_name, dirs.get(VAL))
        if seg.val_fraction == 0:  # no validation asked for: the root's val pairs train too
            return (
                np.concatenate([images, val_images]),
                np.concatenate([labels, val_labels]),
                images[:0],
                labels[:0],
                names + val_names,
            )
        record = {"source": "the data root's val split", "train": names, "val": val_names}
    else:
        train, val = holdout(names, seg.val_fraction, seg.val_seed)
        val_images, val_labels, val_names = images[val], labels[val], [names[i] for i in val]
        images, labels, names = images[train], labels[train], [names[i] for i in train]
        record = {
            "source": "held out of the training split",
            "val_fraction": seg.val_fraction,
            "val_seed": seg.val_seed,
            "train": names,
            "val": val_names,
        }
    if len(val_images) and place.is_main:
        write_json_atomic(out_dir / "split.json", record)
    return images, labels, val_images, val_labels, names


@dataclass
class _Data:
    """The splits one training reads: the augmented training set, the validation split (at the
    training scale) and the test split (at full size: predict() scales it and scores at label
    resolution)."""

    train: AugmentedSplit
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    test_names: list[str]
    colour: str


def _load_data(data_root: Path, input_name: str, dirs: dict, seg, out_dir: Path, place, seed: int) -> _Data:
    train_images, train_labels, val_images, val_labels, _ = _training_and_validation(
        data_root, input_name, dirs, seg, out_dir, place
    )
    colour = colour_mode(train_images)
    train_images, train_labels = rescale(train_images, train_labels, seg.image_scale)
    val_images, val_labels = rescale(val_images, val_labels, seg.image_scale)
    test_images, test_labels, test_names = load_split(data_root, "test", input_name, dirs.get("test"))
    crop = training_crop(seg, train_images.shape[1:3])
    transform = train_transform(crop, seg.scale_range, seg.rare_crop_fraction, rare_classes(train_labels))
    dataset = AugmentedSplit(train_images, train_labels, transform, seed)
    for batch in {seg.freeze_batch_size, seg.batch_size}:
        if len(dataset) < batch:
            raise DataError(
                f"{data_root / 'train'}: {len(dataset)} training images, fewer than one batch of {batch}"
            )
    return _Data(dataset, val_images, val_labels, test_images, test_labels, test_names, colour)


def _epoch_loader(
    loaders: dict, dataset, sampler, config, epoch: int, place, device, precision
) -> DataLoader:
    """This epoch's batches: the sampler and the augmentation seeded for ``epoch``, the phase's
    batch size split over the ranks. ``loaders`` keeps the loader of the current batch size, so
    its worker processes live on from epoch to epoch (segmentation/data.py)."""
    seg = config.segmentation
    sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    batch = per_rank_batch(phase_batch(seg, epoch), place)
    if batch not in loaders:
        loaders.clear()  # the frozen phase's workers end with it
        workers = loader_workers(seg.num_workers, device, cpu_share(config.runtime))
        loaders[batch] = training_loader(dataset, batch, sampler, workers, precision.pin_memory)
    return loaders[batch]


def train_segmentation(
    config: ExperimentConfig,
    data_root: Path,
    input_name: str,
    out_dir: Path,
    seed: int,
    image_dirs: dict[str, Path] | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    identity: str | None = None,
) -> dict:
    """Train on ``input_name`` (infrared | visible | fused:<method> with ``image_dirs``: split ->
    folder) and write model.pt, checkpoint.pt, metrics.json, history.csv, predictions/ and the
    test split's per-image confusion matrices (CONFUSION_FILE) into ``out_dir`` (with a validation
    split also split.json and best.pt). ``stop_after`` ends after that many epochs without the
    final evaluation (a time-boxed job; the next call with ``resume=True`` continues).
    ``identity`` (the stage identity of pipelines/engine) is stored in the checkpoint and
    metrics.json; only a checkpoint of the same identity is resumed. Returns the metrics."""
    seg, out_dir = config.segmentation, Path(out_dir)
    device, place = init_distributed(pick_device(config.runtime.device))
    precision = resolve_precision(config.runtime, device)
    check_encoder(seg.encoder)  # before any data is read
    check_frozen_encoder_is_trained(seg)
    data = _load_data(data_root, input_name, image_dirs or {}, seg, out_dir, place, seed)

    torch.manual_seed(seed)
    model = model_from_config(seg, seg.encoder_weights).to(device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = DiceCELoss(seg.dice_weight, seg.ce_weight)
    start_epoch, history, best = 0, [], {"val_loss": float("inf"), "epoch": 0}
    checkpoint_path, best_path = out_dir / "checkpoint.pt", out_dir / "best.pt"
    state = resume_state(checkpoint_path, resume, device, identity)
    if state is not None:
        model.load_state_dict(state["model"])
        start_epoch, history, best = state["epoch"], state["history"], state.get("best", best)
    frozen = start_epoch < seg.freeze_epochs
    optimizer = _optimizer(model, seg, frozen)
    if state is not None and (seg.keep_optimizer or state["frozen"] == frozen):
        optimizer.load_state_dict(state["optimizer"])
    net = wrap_model(model, device, place, sync_batchnorm=place.enabled)
    scaler = precision.make_scaler(device)
    sampler = DistributedSampler(data.train, num_replicas=place.world_size, rank=place.rank, seed=seed)
    last = seg.epochs if stop_after is None else min(seg.epochs, stop_after)
    loaders: dict[int, DataLoader] = {}
    for epoch in range(start_epoch, last):
        if (epoch < seg.freeze_epochs) != frozen:  # the unfreeze boundary
            frozen = epoch < seg.freeze_epochs
            if seg.keep_optimizer:
                set_encoder_frozen(model, frozen)
            else:
                optimizer = _optimizer(model, seg, frozen)
            net = wrap_model(model, device, place, sync_batchnorm=place.enabled)
        lr = learning_rate(seg, epoch)
        begin_epoch(optimizer, lr, seed, epoch)  # dropout seeded from (seed, epoch)
        loader = _epoch_loader(loaders, data.train, sampler, config, epoch, place, device, precision)
        set_train_mode(model, frozen, seg.frozen_bn_updates)
        tick = time.perf_counter()
        label = (
            f"{input_name} seed {seed} epoch {epoch + 1}/{seg.epochs}{' (encoder frozen)' if frozen else ''}"
        )
        bar = progress_bar(loader, label, progress and place.is_main, lr=lr)
        sums = train_one_epoch(net, bar, criterion, optimizer, scaler, precision, device)
        row = {"epoch": epoch + 1, "phase": "frozen" if frozen else "full", "lr": lr}
        row |= sums.means(place)
        stepped = time.perf_counter()
        row |= {"val_loss": float("nan"), "test_miou": float("nan"), "seconds": round(stepped - tick, 2)}
        if len(data.val_images):
            row["val_loss"] = validation_loss(
                net, criterion, data.val_images, data.val_labels, device, place, precision, seg.batch_size
            )
            if row["val_loss"] < best["val_loss"]:
                best = {"val_loss": row["val_loss"], "epoch": epoch + 1}
                if place.is_main and seg.reported_model == "lowest_val_loss":
                    save_torch_atomic(best_path, {"model": model.state_dict(), **best})
        if seg.eval_every and (epoch + 1) % seg.eval_every == 0 and epoch + 1 < seg.epochs:
            row["test_miou"] = _sharded_scores(
                net, data.test_images, data.test_labels, device, place, seg.image_scale, precision
            )[0]["miou"]
        row["outside_seconds"] = round(time.perf_counter() - stepped, 2)  # validation, evaluation
        history.append(row)
        checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1}
        checkpoint |= {"frozen": frozen, "history": history, "best": best, "identity": identity}
        save_checkpoint(checkpoint_path, checkpoint, place)
    if last < seg.epochs:
        return {"stopped_after_epoch": last}
    if seg.reported_model == "lowest_val_loss":
        model.load_state_dict(load_checkpoint(best_path, device)["model"])
    reported_epoch = best["epoch"] if seg.reported_model == "lowest_val_loss" else seg.epochs
    header = {"input": input_name, "seed": seed, "epochs": seg.epochs, "identity": identity}
    return _score_and_save(
        model, net, data, seg, history, reported_epoch, header, out_dir, device, place, precision
    )


def _score_and_save(
    model, net, data: _Data, seg, history, reported_epoch, header, out_dir, device, place, precision
) -> dict:
    """Score the reported model on the test split and write model.pt, history.csv,
    metrics.json, the per-image confusion matrices and the prediction images (rank 0); ``header``
    opens metrics.json (input, seed, epochs, identity)."""
    evaluated = time.perf_counter()
    metrics, per_image = _sharded_scores(
        net, data.test_images, data.test_labels, device, place, seg.image_scale, precision
    )
    if history and reported_epoch == seg.epochs:
        history[-1]["test_miou"] = metrics["miou"]
    metrics.update(
        {
            **header,
            "device": str(device),
            "precision": precision.name,
            # epochs of earlier (interrupted) sessions included
            "wall_seconds": round(history_seconds(history) + time.perf_counter() - evaluated, 1),
            "train_images": len(data.train),
            "val_images": len(data.val_images),
            "test_images": len(data.test_images),
            "colour": data.colour,
            "reported_model": seg.reported_model,
            "reported_epoch": reported_epoch,
            "processes": place.world_size,
        }
    )
    if place.is_main:
        save_confusion_per_image(out_dir / CONFUSION_FILE, data.test_names, per_image)
        shown = prediction_image_indices(len(data.test_names), seg.prediction_images)
        save_prediction_images(
            out_dir / "predictions",
            [data.test_names[i] for i in shown],
            data.test_images[shown],
            data.test_labels[shown],
            predict(model, data.test_images[shown], device, image_scale=seg.image_scale, precision=precision),
        )
        saved = {"model": model.state_dict(), "encoder": seg.encoder, "input": header["input"]}
        saved |= {"decoder_channels": seg.decoder_channels, "output_stride": seg.output_stride}
        saved |= {"atrous_rates": list(seg.atrous_rates), "image_scale": seg.image_scale}
        save_torch_atomic(out_dir / "model.pt", saved)
        write_text_atomic(out_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))
        write_json_atomic(out_dir / "metrics.json", metrics)
    barrier(place)
    return metrics


def load_trained(path: Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, float]:
    """Rebuild a model saved by train_segmentation (weights only, no pretrained download) and
    return it with the image scale it was trained at (``predict(..., image_scale=...)``). Files
    written before the rates were a setting ran smp's default (12, 24, 36)."""
    state = load_checkpoint(path, device)
    model = build_model(
        state["encoder"],
        None,
        decoder_channels=state.get("decoder_channels", 256),
        output_stride=state.get("output_stride", 16),
        atrous_rates=tuple(state.get("atrous_rates", (12, 24, 36))),
    )
    model.load_state_dict(state["model"])
    return model.to(device).eval(), float(state.get("image_scale", 1.0))
