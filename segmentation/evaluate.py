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

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from msrs.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from runtime.files import write_bytes_atomic
from segmentation.data import rescale, to_tensor
from segmentation.figures import colourise

CONFUSION_FILE = "confusion_per_image.npz"  # beside metrics.json in every segmentation run


def confusion_matrix(
    prediction: torch.Tensor,
    target: torch.Tensor,
    num_classes: int = NUM_CLASSES,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """(C, C) int64 counts, rows = ground truth, columns = prediction; ignored pixels dropped."""
    keep = target != ignore_index
    index = target[keep].long() * num_classes + prediction[keep].long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def confusion_per_image(
    predictions: np.ndarray,
    labels: np.ndarray,
    num_classes: int = NUM_CLASSES,
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """(N, C, C) uint32 counts, one confusion matrix per image (rows ground truth); their sum
    over images is :func:`confusion_matrix` of the whole split."""
    out = np.empty((len(labels), num_classes, num_classes), np.uint32)
    for image, (prediction, label) in enumerate(zip(predictions, labels, strict=True)):
        keep = label != ignore_index  # one image at a time: MSRS's test split is 10^8 pixels
        index = label[keep].astype(np.int64) * num_classes + prediction[keep]
        out[image] = np.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)
    return out


def save_confusion_per_image(
    path: Path, names: list[str], predictions: np.ndarray, labels: np.ndarray
) -> Path:
    """Write the test split's per-image confusion matrices and image names (compressed .npz):
    the evidence segmentation.statistics bootstraps over."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        confusion=confusion_per_image(predictions, labels),
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
        raise ValueError(f"{path}: not a per-image confusion file ({error})") from error
    if list(classes) != list(CLASS_NAMES) or confusion.shape != (len(names), *[len(CLASS_NAMES)] * 2):
        raise ValueError(
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
def predict(
    model: torch.nn.Module,
    images: np.ndarray,
    device: torch.device,
    batch_size: int = 8,
    image_scale: float = 1.0,
) -> np.ndarray:
    """Class maps (N, H, W) uint8 at the images' resolution. Each batch is resized by
    ``image_scale`` (the scale the model was trained at, segmentation.data.rescale), zero-padded
    to a multiple of 16 (DeepLabV3+'s output stride), and the logits are cropped back and, at a
    scale below 1, resized bilinearly to the full size before the argmax (as the anchor code
    resizes its probability maps), so scores are always taken at label resolution."""
    model.eval()
    height, width = images.shape[1:3]
    out = np.empty(images.shape[:3], np.uint8)
    for start in range(0, len(images), batch_size):
        batch, _ = rescale(images[start : start + batch_size], None, image_scale)
        small_h, small_w = batch.shape[1:3]
        pad_h, pad_w = (-small_h) % 16, (-small_w) % 16
        logits = model(F.pad(to_tensor(batch).to(device), (0, pad_w, 0, pad_h)))[..., :small_h, :small_w]
        if (small_h, small_w) != (height, width):
            logits = F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)
        out[start : start + batch_size] = logits.argmax(1).to(torch.uint8).cpu().numpy()
    return out


def evaluate(
    model: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    device: torch.device,
    batch_size: int = 8,
    image_scale: float = 1.0,
) -> tuple[dict, np.ndarray]:
    """Scores on a whole split, and the predictions."""
    predictions = predict(model, images, device, batch_size, image_scale)
    matrix = confusion_matrix(torch.from_numpy(predictions), torch.from_numpy(labels))
    return scores(matrix), predictions


def save_prediction_images(
    folder: Path,
    names: list[str],
    images: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    count: int,
) -> list[Path]:
    """``count`` PNGs side by side: input | ground truth | prediction (MSRS palette)."""
    written = []
    for index in np.linspace(0, len(names) - 1, num=min(count, len(names))).astype(int):
        panel = np.concatenate(
            [images[index], colourise(labels[index]), colourise(predictions[index])], axis=1
        )
        buffer = io.BytesIO()
        Image.fromarray(panel).save(buffer, format="PNG")
        written.append(write_bytes_atomic(folder / f"{names[index]}.png", buffer.getvalue()))
    return written
