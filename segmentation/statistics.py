"""How sure is Table 2? Bootstrap confidence intervals and paired comparisons of mIoU.

The evidence is each segmentation run's per-image confusion matrices on the test split
(``confusion_per_image.npz``, written by segmentation.evaluate), so nothing is retrained.

Method (all of it in :func:`compare_rows`):

- **Point estimate** of a row: the mean over its seeds of the split mIoU, which is computed from
  the confusion matrix summed over all test images (segmentation.evaluate), so it equals the
  mean of the rows' ``metrics.json`` values.
- **Bootstrap**: ``resamples`` times, draw the test images with replacement (the same draw for
  every row: that pairs the comparisons) and, per row, its seeds with replacement; recompute each
  seed's mIoU from the summed confusion matrices of the drawn images and average over the drawn
  seeds. The 95% interval of a row is the 2.5/97.5 percentile of these (percentile bootstrap).
- **Paired differences**: for every pair of rows, the same resamples give the distribution of the
  difference of their mIoU: its percentile interval, and a two-sided p-value (twice the smaller
  share of resampled differences on either side of zero, with the +1 correction, so the
  smallest p is 2 / (resamples + 1)).
- **Multiple comparisons**: Holm's step-down correction over the whole family of pairwise
  comparisons (every pair of rows). A difference is *significant* when its Holm-adjusted p is
  below ``alpha``; the printed intervals are the unadjusted 95% percentile intervals.
- **Rank groups**: a row's group is 1 + the number of rows significantly better than it, so rows
  that cannot be told apart from the same rows share a group, and the best group is 1.

Deterministic: the draws come from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000


@dataclass
class RowEvidence:
    """Per-image confusion matrices of one Table 2 row: ``confusion`` (seeds, images, C, C),
    rows ground truth, columns prediction; ``names`` the test images in that order."""

    label: str
    seeds: list[int]
    confusion: np.ndarray
    names: list[str]


@dataclass
class Comparison:
    """The bootstrap's results for ``labels`` (R rows), arrays indexed by row (and row x row for
    the pairwise ones: entry [i, j] is row i minus row j)."""

    labels: list[str]
    seeds: np.ndarray  # (R,) seed count per row
    miou: np.ndarray  # (R,) point estimate, mean over seeds
    ci_low: np.ndarray  # (R,)
    ci_high: np.ndarray  # (R,)
    difference: np.ndarray  # (R, R)
    difference_low: np.ndarray  # (R, R)
    difference_high: np.ndarray  # (R, R)
    p_value: np.ndarray  # (R, R) unadjusted, two-sided; NaN on the diagonal
    p_holm: np.ndarray  # (R, R) Holm-adjusted over the R(R-1)/2 pairs
    significant: np.ndarray  # (R, R) bool
    rank_group: np.ndarray  # (R,) 1 = best group
    images: int  # test images per row
    resamples: int
    alpha: float

    def index(self, label: str) -> int:
        return self.labels.index(label)


def miou_from_confusion(matrices: np.ndarray) -> np.ndarray:
    """mIoU (%) of confusion matrices (..., C, C): classes absent from both prediction and
    ground truth are left out of the mean (as segmentation.evaluate.scores)."""
    matrices = np.asarray(matrices, dtype=np.float64)
    true_positive = np.diagonal(matrices, axis1=-2, axis2=-1)
    union = matrices.sum(-1) + matrices.sum(-2) - true_positive
    present = union > 0
    iou = np.divide(true_positive, union, out=np.zeros_like(union), where=present)
    count = present.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, iou.sum(-1) / count * 100, np.nan)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values of a 1-D family (monotone, capped at 1)."""
    p_values = np.asarray(p_values, dtype=np.float64)
    count = len(p_values)
    if count == 0:
        return p_values
    order = np.argsort(p_values, kind="stable")
    scaled = (count - np.arange(count)) * p_values[order]
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(count)
    out[order] = adjusted
    return out


def _resampled_miou(
    evidence: list[RowEvidence], image_draws: np.ndarray, seed_uniforms: np.ndarray
) -> np.ndarray:
    """(B, R) bootstrap mIoU per row for one chunk of B resamples."""
    images = image_draws.shape[1]
    weights = np.zeros((len(image_draws), images))
    np.add.at(weights, (np.arange(len(image_draws))[:, None], image_draws), 1.0)
    out = np.empty((len(image_draws), len(evidence)))
    for r, row in enumerate(evidence):
        seeds, _, classes, _ = row.confusion.shape
        flat = row.confusion.astype(np.float64).transpose(1, 0, 2, 3).reshape(images, -1)
        summed = (weights @ flat).reshape(-1, seeds, classes, classes)
        per_seed = miou_from_confusion(summed)  # (B, S)
        # the same uniforms for every row, scaled to its own seed count
        drawn = np.minimum((seed_uniforms[:, :seeds] * seeds).astype(int), seeds - 1)
        out[:, r] = np.take_along_axis(per_seed, drawn, axis=1).mean(1)
    return out


def compare_rows(
    evidence: list[RowEvidence],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    alpha: float = 0.05,
    chunk: int = 1000,
) -> Comparison:
    """Bootstrap the rows of ``evidence`` (same test images, in the same order, in every row;
    seed counts may differ) as described in the module docstring."""
    if not evidence:
        raise ValueError("no rows with per-image evidence to compare")
    names = evidence[0].names
    for row in evidence:
        if row.confusion.ndim != 4 or row.confusion.shape[2] != row.confusion.shape[3]:
            raise ValueError(
                f"{row.label}: confusion matrices must be (seeds, images, C, C), got {row.confusion.shape}"
            )
        if row.names != names:
            raise ValueError(
                f"{row.label}: its test images differ from {evidence[0].label}'s; "
                "paired comparisons need the same images in every row"
            )
    rng = np.random.default_rng(seed)
    max_seeds = max(row.confusion.shape[0] for row in evidence)
    chunks = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        image_draws = rng.integers(0, len(names), (size, len(names)))
        seed_uniforms = rng.random((size, max_seeds))
        chunks.append(_resampled_miou(evidence, image_draws, seed_uniforms))
    boot = np.concatenate(chunks)  # (B, R)
    miou = np.array([np.nanmean(miou_from_confusion(row.confusion.sum(1))) for row in evidence])

    difference = miou[:, None] - miou[None, :]
    boot_difference = boot[:, :, None] - boot[:, None, :]  # (B, R, R)
    low, high = np.nanpercentile(boot_difference, [2.5, 97.5], axis=0)
    at_or_below = (boot_difference <= 0).sum(0)
    at_or_above = (boot_difference >= 0).sum(0)
    p_value = np.minimum(1.0, 2 * (np.minimum(at_or_below, at_or_above) + 1) / (resamples + 1))
    rows = len(evidence)
    upper = np.triu_indices(rows, k=1)
    p_holm = np.full((rows, rows), np.nan)
    p_holm[upper] = holm(p_value[upper])
    p_holm.T[upper] = p_holm[upper]
    np.fill_diagonal(p_value, np.nan)
    significant = np.nan_to_num(p_holm, nan=1.0) < alpha
    better = significant & (difference < 0)  # [i, j]: row j significantly above row i
    ci_low, ci_high = np.nanpercentile(boot, [2.5, 97.5], axis=0)
    return Comparison(
        labels=[row.label for row in evidence],
        seeds=np.array([row.confusion.shape[0] for row in evidence]),
        miou=miou,
        ci_low=ci_low,
        ci_high=ci_high,
        difference=difference,
        difference_low=low,
        difference_high=high,
        p_value=p_value,
        p_holm=p_holm,
        significant=significant,
        rank_group=1 + better.sum(1),
        images=len(names),
        resamples=resamples,
        alpha=alpha,
    )


def best_versus_second(comparison: Comparison) -> tuple[str, str, bool] | None:
    """(best label, second label, whether the best is significantly better), or None with
    fewer than two rows."""
    if len(comparison.labels) < 2:
        return None
    second, best = np.argsort(comparison.miou, kind="stable")[-2:]
    return (comparison.labels[best], comparison.labels[second], bool(comparison.significant[best, second]))
