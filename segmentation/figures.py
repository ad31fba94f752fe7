"""Figures of the report: mIoU bars with error bars, a per-class heat map, and a qualitative
grid in the spirit of the paper's Figure 11 (infrared, visible, fused images, ground truth,
predictions). Every function writes one PNG atomically and returns its path."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from msrs.classes import CLASS_NAMES, PALETTE
from runtime.files import write_bytes_atomic


def _save(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return write_bytes_atomic(path, buffer.getvalue())


def miou_bars(table: pd.DataFrame, path: str | Path) -> Path:
    """One bar per input (mean mIoU) on an axis from zero; error bars = the 95%
    interval where the table has one (segmentation.statistics), else the std over seeds."""
    figure, axis = plt.subplots(figsize=(max(5, 0.7 * len(table) + 2), 3.6))
    errors = table["miou_std"].fillna(0).to_numpy() if "miou_std" in table else None
    if "miou_ci_low" in table:
        errors = np.stack(
            [
                (table["miou"] - table["miou_ci_low"]).fillna(0).to_numpy(float),
                (table["miou_ci_high"] - table["miou"]).fillna(0).to_numpy(float),
            ]
        )
    colours = [
        "#c44e52" if name == "SSPFusion" else "#4c72b0" if name in ("Infrared", "Visible") else "#8c8c8c"
        for name in table["input"]
    ]
    bars = axis.bar(table["input"], table["miou"], yerr=errors, capsize=4, color=colours)
    axis.bar_label(bars, fmt="%.1f", fontsize=8)  # bars start at zero: the values show small gaps
    top = np.nanmax(table["miou_ci_high"]) if "miou_ci_low" in table else np.nan
    top = np.nanmax([top, float(np.nanmax(table["miou"]))])
    axis.set_ylim(0.0, min(100.0, top + 8))
    axis.set_ylabel("mIoU (%)" + (", 95% CI" if "miou_ci_low" in table else ""))
    axis.set_title("Segmentation mIoU per input (DeepLabV3+)")
    axis.tick_params(axis="x", rotation=30)
    return _save(figure, Path(path))


def class_heatmap(table: pd.DataFrame, path: str | Path) -> Path:
    """Inputs x classes heat map of IoU (%), values written in the cells."""
    columns = [*CLASS_NAMES, "miou"]
    values = table[columns].to_numpy(dtype=float)
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(table) + 1.5))
    image = axis.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    axis.set_xticks(range(len(columns)), columns, rotation=35, ha="right")
    axis.set_yticks(range(len(table)), table["input"])
    for (row, column), value in np.ndenumerate(values):
        if not np.isnan(value):
            axis.text(
                column,
                row,
                f"{value:.1f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value < 60 else "black",
            )
    figure.colorbar(image, ax=axis, label="IoU (%)")
    axis.set_title("Per-class IoU")
    return _save(figure, Path(path))


DIFFERENCE_FLOOR = 1.0  # mIoU points: the pairwise colours reach full strength no sooner


def colour_limit(differences: np.ndarray) -> float:
    """The colour scale's end of the pairwise heat map: the largest difference, but at least
    :data:`DIFFERENCE_FLOOR`, so differences of hundredths of a point (noise) stay pale instead
    of being drawn as strong as real ones."""
    finite = differences[np.isfinite(differences)]
    return max(float(np.abs(finite).max()) if finite.size else 0.0, DIFFERENCE_FLOOR)


def pairwise_heatmap(comparison, path: str | Path) -> Path:
    """Rows x rows heat map of mIoU differences (row minus column, points), significant cells
    (Holm, segmentation.statistics) marked with * and a black frame; colours scaled by
    :func:`colour_limit`."""
    labels = comparison.labels
    values = np.where(np.eye(len(labels), dtype=bool), np.nan, comparison.difference)
    limit = colour_limit(values)
    size = 0.55 * len(labels) + 2
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    image = axis.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit)
    axis.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    for (row, column), value in np.ndenumerate(values):
        if np.isnan(value):
            continue
        significant = comparison.significant[row, column]
        axis.text(
            column,
            row,
            f"{value:+.1f}{'*' if significant else ''}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if abs(value) > 0.6 * limit else "black",
        )
        if significant:
            axis.add_patch(plt.Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, lw=1.2))
    figure.colorbar(image, ax=axis, label="mIoU difference (points)")
    axis.set_title("Row minus column mIoU; * significant at 95% (Holm)")
    return _save(figure, Path(path))


def colourise(label: np.ndarray) -> np.ndarray:
    """Class-index map -> RGB with the MSRS palette (ignore = white)."""
    palette = np.full((256, 3), 255, np.uint8)
    palette[: len(PALETTE)] = np.array(PALETTE, np.uint8)
    return palette[label]


def qualitative(title: str, panels: list[tuple[str, np.ndarray]], path: str | Path, columns: int = 4) -> Path:
    """One test image's figure: ``panels`` (title, image) in reading order, ``columns`` a row,
    each panel about 3.2 inches wide so that a person is visible at page width. An image is
    uint8 grey (H, W), RGB (H, W, 3), or a class map when its title is "Ground truth" or ends
    in "prediction" (drawn with the MSRS palette); a legend of the classes follows the ground
    truth."""
    if not panels:
        raise ValueError("qualitative figure needs at least one panel")
    entries: list[tuple[str, np.ndarray | None]] = []
    for name, image in panels:
        entries.append((name, image))
        if name == "Ground truth":
            entries.append(("", None))  # the legend's cell
    rows = -(-len(entries) // columns)
    height, width = panels[0][1].shape[:2]
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.2 * columns, 3.2 * height / width * rows + 0.4 * rows), squeeze=False
    )
    for axis, entry in zip(axes.flat, [*entries, *[None] * (rows * columns - len(entries))], strict=True):
        axis.axis("off")
        if entry is None:
            continue
        name, image = entry
        if image is None:
            handles = [plt.Rectangle((0, 0), 1, 1, color=np.array(c) / 255) for c in PALETTE]
            axis.legend(handles, CLASS_NAMES, loc="center", fontsize=9, frameon=False, ncol=2)
            continue
        if image.ndim == 2 and (name == "Ground truth" or name.endswith("prediction")):
            image = colourise(image)
        axis.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        axis.set_title(name, fontsize=10)
    figure.suptitle(title, fontsize=12)
    return _save(figure, Path(path))
