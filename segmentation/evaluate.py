"""Confusion matrix over a whole split at full label resolution -> per-class IoU, mIoU, accuracy.

As the anchor code and torchvision's references: rows are ground truth, columns predictions,
accumulated over the whole split (not a mean of per-image scores). IoU_c = TP / (TP + FP + FN).
A class absent from the split's ground truth has no IoU: it is NaN and left out of the mean, for
every input alike (an input that predicts it anyway is not scored on a class the split does not
have; the anchor code scores it 0 instead). mIoU averages the nine classes, background
included, as the paper's Table 2, wherever the split holds all nine (MSRS's and MFNet's test
splits do).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from msrs.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from msrs.layout import DataError
from runtime.files import write_bytes_atomic
from runtime.precision import Precision
from segmentation.data import normalise, rescale
from segmentation.figures import colourise

CONFUSION_FILE = "confusion_per_image.npz"  # beside metrics.json in every segmentation run


def confusion_per_image(
    predictions: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    num_classes: int = NUM_CLASSES,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """(N, C, C) int64 counts, one confusion matrix per image (rows ground truth), computed where
    the tensors are (on the GPU for a GPU's predictions) by one ``bincount``: pixel (image n,
    truth t, prediction p) counts in bin n C^2 + t C + p; ignored pixels go to one extra bin that
    is dropped, so no boolean selection makes the device wait. Their sum over images is
    :func:`confusion_matrix` of the whole split."""
    predictions, labels = torch.as_tensor(predictions), torch.as_tensor(labels)
    count, cells = len(labels), num_classes * num_classes
    image = torch.arange(count, device=labels.device).view(-1, *[1] * (labels.dim() - 1))
    index = image * cells + labels.long() * num_classes + predictions.long()
    index = torch.where(labels == ignore_index, count * cells, index)
    return torch.bincount(index.flatten(), minlength=count * cells + 1)[:-1].view(
        count, num_classes, num_classes
    )


def confusion_matrix(
    prediction: torch.Tensor,
    target: torch.Tensor,
    num_classes: int = NUM_CLASSES,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """(C, C) int64 counts, rows = ground truth, columns = prediction; ignored pixels dropped."""
    return confusion_per_image(prediction[None], target[None], num_classes, ignore_index)[0]


def save_confusion_per_image(path: Path, names: list[str], confusion: torch.Tensor | np.ndarray) -> Path:
    """Write the test split's per-image confusion matrices (N, C, C) (:func:`confusion_per_image`)
    and image names (compressed .npz): the evidence of segmentation.statistics' intervals."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        confusion=np.asarray(torch.as_tensor(confusion).cpu(), np.uint32),
        names=np.array(names),
        classes=np.array(CLASS_NAMES),
    )
    return write_bytes_atomic(path, buffer.getvalue())


def load_confusion_per_image(path: Path) -> tuple[np.ndarray, list[str]]:
    """(N, C, C) confusion matrices and the N image names saved by save_confusion_per_image."""
    try:
        with np.load(path, allow_pickle=False) as data:
            confusion, names, classes = data["confusion"], data["names"], data["classes"]
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"{path}: not a per-image confusion file ({error})") from error
    if list(classes) != list(CLASS_NAMES) or confusion.shape != (len(names), *[len(CLASS_NAMES)] * 2):
        raise DataError(
            f"{path}: expected {len(names)} matrices over the classes "
            f"{', '.join(CLASS_NAMES)}, got shape {confusion.shape} over {list(classes)}"
        )
    return confusion, [str(name) for name in names]


def scores(matrix: torch.Tensor | np.ndarray) -> dict:
    """Per-class IoU (%), mIoU (%), pixel accuracy (%) from a confusion matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    true_positive = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(matrix.sum(1) > 0, true_positive / union, np.nan) * 100  # rows: ground truth
    total = matrix.sum()
    return {
        "per_class_iou": {
            name: (None if np.isnan(v) else float(v)) for name, v in zip(CLASS_NAMES, iou, strict=True)
        },
        "miou": float(np.nanmean(iou)) if not np.all(np.isnan(iou)) else float("nan"),
        "pixel_accuracy": float(true_positive.sum() / total * 100) if total else float("nan"),
        "absent_classes": [name for name, v in zip(CLASS_NAMES, iou, strict=True) if np.isnan(v)],
        "note": "IoU in percent; a class absent from the ground truth is NaN (null) and excluded "
        "from the mean; mIoU averages the 9 classes, background included",
    }


@torch.no_grad()
def predicted_batches(
    model: torch.nn.Module,
    images: np.ndarray,
    device: torch.device,
    batch_size: int = 8,
    image_scale: float = 1.0,
    precision: Precision | None = None,
):
    """(start index, class maps (B, H, W) uint8 on ``device``) for each batch of ``images`` at
    their resolution. Each batch goes to the device as uint8 and is normalised there, resized by
    ``image_scale`` (the scale the model was trained at, segmentation.data.rescale), zero-padded
    to a multiple of 16 (DeepLabV3+'s output stride) and run under the precision's autocast; the
    logits are cropped back and, at a scale below 1, resized bilinearly to the full size before
    the argmax (as the anchor code resizes its probability maps), so scores are always taken at
    label resolution."""
    model.eval()
    height, width = images.shape[1:3]
    for start in range(0, len(images), batch_size):
        batch, _ = rescale(images[start : start + batch_size], None, image_scale)
        small_h, small_w = batch.shape[1:3]
        pad_h, pad_w = (-small_h) % 16, (-small_w) % 16
        batch = normalise(torch.from_numpy(np.ascontiguousarray(batch)).to(device))
        if precision is not None:
            batch = precision.memory_format(batch)
        with precision.autocast(device) if precision is not None else contextlib.nullcontext():
            logits = model(F.pad(batch, (0, pad_w, 0, pad_h)))[..., :small_h, :small_w]
        if (small_h, small_w) != (height, width):
            logits = F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)
        yield start, logits.argmax(1).to(torch.uint8)


def predict(
    model: torch.nn.Module,
    images: np.ndarray,
    device: torch.device,
    batch_size: int = 8,
    image_scale: float = 1.0,
    precision: Precision | None = None,
) -> np.ndarray:
    """Class maps (N, H, W) uint8 at the images' resolution (:func:`predicted_batches`)."""
    out = np.empty(images.shape[:3], np.uint8)
    for start, batch in predicted_batches(model, images, device, batch_size, image_scale, precision):
        out[start : start + len(batch)] = batch.cpu().numpy()
    return out


def confusion_of_split(
    model: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    device: torch.device,
    batch_size: int = 8,
    image_scale: float = 1.0,
    precision: Precision | None = None,
) -> torch.Tensor:
    """(N, C, C) per-image confusion matrices of a split, predicted and counted on ``device``
    (labels go there as uint8); nothing but the matrices comes back."""
    matrices = []
    for start, batch in predicted_batches(model, images, device, batch_size, image_scale, precision):
        target = torch.from_numpy(labels[start : start + len(batch)]).to(device)
        matrices.append(confusion_per_image(batch, target))
    if not matrices:
        return torch.zeros((0, NUM_CLASSES, NUM_CLASSES), dtype=torch.int64, device=device)
    return torch.cat(matrices)


def prediction_image_indices(count: int, shown: int) -> np.ndarray:
    """Which of ``count`` test images get a prediction figure: ``shown`` spread evenly."""
    return np.unique(np.linspace(0, count - 1, num=min(shown, count)).astype(int))


def save_prediction_images(
    folder: Path,
    names: list[str],
    images: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
) -> list[Path]:
    """One PNG per image, side by side: input | ground truth | prediction (MSRS palette)."""
    written = []
    for name, image, label, prediction in zip(names, images, labels, predictions, strict=True):
        panel = np.concatenate([image, colourise(label), colourise(prediction)], axis=1)
        buffer = io.BytesIO()
        Image.fromarray(panel).save(buffer, format="PNG")
        written.append(write_bytes_atomic(folder / f"{name}.png", buffer.getvalue()))
    return written
