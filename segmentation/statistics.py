"""How sure is Table 2? Confidence intervals and paired comparisons of mIoU that hold their
level with few training seeds.

The evidence is each segmentation run's per-image confusion matrices on the test split
(``confusion_per_image.npz``, written by segmentation.evaluate), so nothing is retrained.
Two sources of noise are measured: which test images were drawn (bootstrap over images) and
which training run a seed gave (the spread between seeds). Method (all of it in
:func:`compare_rows`):

- **mIoU of a set of images**: IoU per class from the summed confusion matrices, averaged over
  the classes present in the *ground truth* of those images (the same classes for every row; a
  class only predicted is left out of every row alike), as ``segmentation.evaluate.scores``.
- **Point estimate** of a row: the mean over its seeds of the test split's mIoU, which equals
  the mean of its ``metrics.json`` values.
- **Bootstrap over images**: ``resamples`` draws of the test images with replacement, the same
  draws for every row and seed (that pairs the comparisons).
- **One seed**: a row's 95% interval is the percentile interval of its bootstrapped mIoU; a
  difference's interval and two-sided p-value come from the bootstrapped differences (twice
  the smaller share on either side of zero, +1 corrected). This covers the test images only.
- **Several seeds** (a random effect): the variance of a mean over S seeds is the bootstrap
  variance of the seed mean (test images) plus the between-seed variance over S (training
  noise); the interval and p-value use a t reference with S - 1 degrees of freedom, those of
  the between-seed variance. DECISION (ours): S - 1 rather than Welch-Satterthwaite's degrees
  of freedom (which run towards the normal when the test images dominate): in null simulations
  with 3 seeds Satterthwaite rejected 6.0-6.2 % of equal pairs at a nominal 5 %, S - 1 holds it
  (conservative when the images dominate). Resampling the S seeds instead would make that part
  of an interval about [min, max] of the seeds and reject far too often
  (``pipelines/benchmark.py stats-null``).
- **Pairs of rows** are compared over the seeds both have, paired by seed *value*; rows with no
  seed in common are not compared (NaN).
- **Multiple comparisons**: Holm's step-down correction over every pair of rows. A difference is
  *significant* when its Holm-adjusted p is below ``alpha``. With one seed the smallest p is
  2 / (resamples + 1), so the number of resamples grows with the number of pairs
  (:func:`resamples_for`) until Holm can reach ``alpha``.
- **Rank group**: 1 + the number of rows significantly better than the row. It says only that:
  two rows of one group are not thereby shown to be equal.

Deterministic: the draws come from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import t as t_distribution

DEFAULT_RESAMPLES = 10_000


@dataclass
class RowEvidence:
    """Per-image confusion matrices of one Table 2 row: ``confusion`` (seeds, images, C, C),
    rows ground truth, columns prediction, one slice per seed of ``seeds`` (their values);
    ``names`` the test images in that order."""

    label: str
    seeds: list[int]
    confusion: np.ndarray
    names: list[str]


@dataclass
class Comparison:
    """The results for ``labels`` (R rows), arrays indexed by row (and row x row for the
    pairwise ones: entry [i, j] is row i minus row j, over the seeds both have)."""

    labels: list[str]
    seeds: np.ndarray  # (R,) seed count per row
    miou: np.ndarray  # (R,) point estimate, mean over seeds
    ci_low: np.ndarray  # (R,)
    ci_high: np.ndarray  # (R,)
    difference: np.ndarray  # (R, R)
    difference_low: np.ndarray  # (R, R)
    difference_high: np.ndarray  # (R, R)
    p_value: np.ndarray  # (R, R) unadjusted, two-sided; NaN on the diagonal and where not compared
    p_holm: np.ndarray  # (R, R) Holm-adjusted over the compared pairs
    significant: np.ndarray  # (R, R) bool
    rank_group: np.ndarray  # (R,) 1 = best group
    images: int  # test images per row
    resamples: int
    alpha: float

    def index(self, label: str) -> int:
        return self.labels.index(label)


def miou_from_confusion(matrices: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """mIoU (%) of confusion matrices (..., C, C) over the classes ``present`` (bool, (..., C),
    broadcast against the matrices; default: the classes in each matrix's own ground truth,
    its row sums). NaN where no class is present."""
    matrices = np.asarray(matrices, dtype=np.float64)
    true_positive = np.diagonal(matrices, axis1=-2, axis2=-1)
    ground_truth = matrices.sum(-1)
    union = ground_truth + matrices.sum(-2) - true_positive
    present = ground_truth > 0 if present is None else np.broadcast_to(present, union.shape)
    iou = np.divide(true_positive, union, out=np.zeros_like(union), where=present & (union > 0))
    count = present.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(present, iou, 0).sum(-1) / count * 100, np.nan)


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


def resamples_for(rows: int, alpha: float = 0.05, minimum: int = DEFAULT_RESAMPLES) -> int:
    """Bootstrap draws enough for Holm over the R(R-1)/2 pairs of ``rows`` to reach ``alpha``
    with one seed (the smallest bootstrap p is 2 / (B + 1)): twice that bound, at least
    ``minimum``."""
    pairs = max(rows * (rows - 1) // 2, 1)
    return max(minimum, int(np.ceil(4 * pairs / alpha)))


def _bootstrap_miou(evidence: list[RowEvidence], draws: np.ndarray) -> list[np.ndarray]:
    """Per row (B, S) mIoU of each seed on each drawn set of images (``draws``: (B, N) image
    indices), over the classes present in each draw's ground truth, the same for every row."""
    images = draws.shape[1]
    weights = np.zeros((len(draws), images))
    np.add.at(weights, (np.arange(len(draws))[:, None], draws), 1.0)
    ground_truth = evidence[0].confusion[0].sum(-1).astype(np.float64)  # (N, C): the same in every row
    present = (weights @ ground_truth) > 0  # (B, C)
    out = []
    for row in evidence:
        seeds, _, classes, _ = row.confusion.shape
        flat = row.confusion.astype(np.float64).transpose(1, 0, 2, 3).reshape(images, -1)
        summed = (weights @ flat).reshape(-1, seeds, classes, classes)
        out.append(miou_from_confusion(summed, present[:, None, :]))
    return out


def _mean_and_spread(values: np.ndarray, boot: np.ndarray, alpha: float) -> tuple[float, float, float, float]:
    """(estimate, interval low, high, two-sided p against 0) of the mean over seeds of
    ``values`` (S,), whose bootstrap over images is ``boot`` (B, S) (module docstring)."""
    estimate = float(values.mean())
    seeds = len(values)
    mean_boot = boot.mean(1)
    if seeds == 1:
        low, high = np.nanpercentile(mean_boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        below, above = (mean_boot <= 0).sum(), (mean_boot >= 0).sum()
        p = min(1.0, 2 * (min(below, above) + 1) / (len(mean_boot) + 1))
        return estimate, float(low), float(high), p
    variance = float(np.nanvar(mean_boot, ddof=1)) + float(values.var(ddof=1)) / seeds
    if variance <= 0:
        return estimate, estimate, estimate, (1.0 if estimate == 0 else 0.0)
    freedom = seeds - 1  # the between-seed variance's (module docstring)
    half = float(t_distribution.ppf(1 - alpha / 2, freedom)) * np.sqrt(variance)
    p = float(2 * t_distribution.sf(abs(estimate) / np.sqrt(variance), freedom))
    return estimate, estimate - half, estimate + half, p


def compare_rows(
    evidence: list[RowEvidence],
    resamples: int | None = None,
    seed: int = 0,
    alpha: float = 0.05,
    chunk: int = 1000,
) -> Comparison:
    """Intervals and paired comparisons of the rows of ``evidence`` (the same test images, in
    the same order, in every row; seed lists may differ), as the module docstring says.
    ``resamples``: bootstrap draws (default :func:`resamples_for` the number of rows)."""
    if not evidence:
        raise ValueError("no rows with per-image evidence to compare")
    names = evidence[0].names
    for row in evidence:
        if row.confusion.ndim != 4 or row.confusion.shape[2] != row.confusion.shape[3]:
            raise ValueError(
                f"{row.label}: confusion matrices must be (seeds, images, C, C), got {row.confusion.shape}"
            )
        if row.confusion.shape[0] != len(row.seeds) or len(set(row.seeds)) != len(row.seeds):
            raise ValueError(
                f"{row.label}: needs one confusion slice per distinct seed, got seeds {row.seeds}"
            )
        if row.names != names:
            raise ValueError(
                f"{row.label}: its test images differ from {evidence[0].label}'s; "
                "paired comparisons need the same images in every row"
            )
    rows = len(evidence)
    resamples = resamples or resamples_for(rows, alpha)
    rng = np.random.default_rng(seed)
    chunks = [
        _bootstrap_miou(evidence, rng.integers(0, len(names), (min(chunk, resamples - start), len(names))))
        for start in range(0, resamples, chunk)
    ]
    boot = [np.concatenate([part[r] for part in chunks]) for r in range(rows)]  # per row (B, S)
    present = evidence[0].confusion[0].sum((0, 2)) > 0  # classes in the test split's ground truth
    per_seed = [miou_from_confusion(row.confusion.sum(1), present) for row in evidence]  # (S,)

    miou, ci_low, ci_high = np.empty(rows), np.empty(rows), np.empty(rows)
    for r in range(rows):
        miou[r], ci_low[r], ci_high[r], _ = _mean_and_spread(per_seed[r], boot[r], alpha)
    difference, low, high, p_value = (np.full((rows, rows), np.nan) for _ in range(4))
    for i in range(rows):
        for j in range(rows):
            common = sorted(set(evidence[i].seeds) & set(evidence[j].seeds))
            if i == j or not common:
                continue
            a = [evidence[i].seeds.index(s) for s in common]
            b = [evidence[j].seeds.index(s) for s in common]
            difference[i, j], low[i, j], high[i, j], p_value[i, j] = _mean_and_spread(
                per_seed[i][a] - per_seed[j][b], boot[i][:, a] - boot[j][:, b], alpha
            )
    upper = np.triu_indices(rows, k=1)
    compared = ~np.isnan(p_value[upper])
    p_holm = np.full((rows, rows), np.nan)
    adjusted = np.full(len(compared), np.nan)
    adjusted[compared] = holm(p_value[upper][compared])
    p_holm[upper] = adjusted
    p_holm.T[upper] = adjusted
    significant = np.nan_to_num(p_holm, nan=1.0) < alpha
    better = significant & (np.nan_to_num(difference) < 0)  # [i, j]: row j significantly above row i
    return Comparison(
        labels=[row.label for row in evidence],
        seeds=np.array([len(row.seeds) for row in evidence]),
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


def ranked(comparison: Comparison) -> np.ndarray:
    """Row indices from the highest mean mIoU down; tied rows keep their table order, so the
    best row of a tie is the first of it everywhere (bold, the sentence, the vs-best column)."""
    return np.argsort(-comparison.miou, kind="stable")


def best_versus_second(comparison: Comparison) -> tuple[str, str, bool] | None:
    """(best label, second label, whether the best is significantly better), or None with
    fewer than two rows."""
    if len(comparison.labels) < 2:
        return None
    best, second = ranked(comparison)[:2]
    return (comparison.labels[best], comparison.labels[second], bool(comparison.significant[best, second]))


def simulate_null_pair(
    rng: np.random.Generator, images: int = 60, seeds: int = 3, seed_noise: float = 1.0
) -> list[RowEvidence]:
    """Two rows that are equal by construction, for checking that :func:`compare_rows` holds
    its level (``pipelines/benchmark.py stats-null``, tests/test_statistics.py). Every image has
    a difficulty both rows share and a noise of each row's own; every training seed shifts a
    row's accuracy on all images at once, by an amount whose spread in mIoU is ``seed_noise``
    times the spread the choice of test images gives one seed's mIoU."""
    classes = 9
    pixels = rng.integers(200, 2000, (images, classes)) * (rng.random((images, classes)) > 0.3)
    difficulty = rng.normal(0, 0.08, (images, 1))

    def confusion(accuracy: np.ndarray) -> np.ndarray:  # (S, N) -> (S, N, C, C)
        right = np.rint(pixels[None] * np.clip(accuracy, 0.05, 0.95)[..., None]).astype(np.int64)
        out = np.zeros((*accuracy.shape, classes, classes), np.int64)
        index = np.arange(classes)
        out[..., index, index] = right
        out[..., index, (index + 1) % classes] = pixels[None] - right  # the misses: the next class
        return out

    # calibration: the image-bootstrap spread of one seed's mIoU, and mIoU per unit of accuracy
    base = 0.6 + difficulty[:, 0] + rng.normal(0, 0.05, images)
    draws = rng.integers(0, images, (400, images))
    image_spread = np.std([miou_from_confusion(confusion(base[None])[0, d].sum(0)) for d in draws])
    slope = (
        miou_from_confusion(confusion(base[None] + 0.01)[0].sum(0))
        - miou_from_confusion(confusion(base[None])[0].sum(0))
    ) / 0.01
    shift_spread = seed_noise * image_spread / slope
    rows = []
    for label in ("a", "b"):
        accuracy = (
            0.6
            + difficulty[:, 0][None]
            + rng.normal(0, 0.05, (seeds, images))
            + rng.normal(0, shift_spread, (seeds, 1))
        )
        rows.append(
            RowEvidence(label, list(range(seeds)), confusion(accuracy), [f"{i:05d}" for i in range(images)])
        )
    return rows


def null_false_positive_rate(
    simulations: int, images: int, seeds: int, seed_noise: float, resamples: int = 1000, seed: int = 0
) -> float:
    """Share of :func:`simulate_null_pair` pairs that :func:`compare_rows` calls significantly
    different at its ``alpha`` (0.05): should be at most about 0.05."""
    rng = np.random.default_rng(seed)
    hits = 0
    for number in range(simulations):
        result = compare_rows(simulate_null_pair(rng, images, seeds, seed_noise), resamples, seed=number)
        hits += bool(result.significant[0, 1])
    return hits / simulations


# ----------------------------------------------------------------------------- coverage simulation

# A street-scene population (ours, shaped like MSRS/MFNet test splits): per class, the share of
# images holding it and its typical pixel count in a 480x640 image. Background and car are in
# nearly every image; the painted classes are rare (MFNet's guardrail: 2 of 50 test images).
POPULATION_PRESENCE = np.array([1.0, 0.85, 0.6, 0.35, 0.25, 0.1, 0.04, 0.06, 0.03])
POPULATION_PIXELS = np.array([250_000, 9_000, 2_500, 1_500, 2_000, 800, 1_200, 300, 600])
# Rows as recall per class (the share of a class's pixels found; the rest goes to background)
# and false alarms (pixels of background called the class, per image holding it, as a share of
# the class's pixels). Row B misses the two rarest classes entirely, as real rows do.
POPULATION_ROWS = {
    "A": (np.array([0.98, 0.8, 0.6, 0.5, 0.45, 0.4, 0.3, 0.35, 0.3]), 0.3),
    "B": (np.array([0.98, 0.78, 0.55, 0.45, 0.4, 0.3, 0.0, 0.3, 0.0]), 0.3),
}


def _street_images(rng: np.random.Generator, count: int) -> np.ndarray:
    """Ground-truth pixel counts (count, C) of ``count`` images of the street population."""
    present = rng.random((count, len(POPULATION_PRESENCE))) < POPULATION_PRESENCE
    present[:, 0] = True
    sizes = rng.lognormal(0.0, 0.6, present.shape) * POPULATION_PIXELS
    return np.where(present, np.rint(sizes), 0).astype(np.int64)


def _row_confusion(
    rng: np.random.Generator, pixels: np.ndarray, recall: np.ndarray, false_alarm: float, shift: float
) -> np.ndarray:
    """(N, C, C) confusion matrices of a row on images of ``pixels`` ground truth: per image and
    class a recall drawn around ``recall + shift`` (a seed's shift), the misses called
    background, and false alarms of background pixels where the class is present."""
    images, classes = pixels.shape
    found = np.clip(recall + shift + rng.normal(0, 0.08, (images, classes)), 0, 1) * (recall > 0)
    hits = np.rint(pixels * found).astype(np.int64)
    out = np.zeros((images, classes, classes), np.int64)
    index = np.arange(classes)
    out[:, index, index] = hits
    out[:, index, 0] += pixels - hits  # missed pixels predicted as background
    alarms = np.rint(pixels[:, 1:] * false_alarm * rng.random((images, classes - 1)) * (recall[1:] > 0))
    out[:, 0, 1:] += alarms.astype(np.int64)
    out[:, 0, 0] -= np.minimum(alarms.sum(1).astype(np.int64), out[:, 0, 0])
    return out


def population_miou(
    rng: np.random.Generator, images: int = 20_000, seed_shifts: np.ndarray | None = None
) -> dict:
    """Each row's mIoU on a large population of images (all nine classes), averaged over the
    seed shifts given (none: one unshifted seed): the values the intervals should cover."""
    pixels = _street_images(rng, images)
    shifts = np.zeros(1) if seed_shifts is None else seed_shifts
    return {
        name: float(
            np.mean(
                [miou_from_confusion(_row_confusion(rng, pixels, recall, alarm, s).sum(0)) for s in shifts]
            )
        )
        for name, (recall, alarm) in POPULATION_ROWS.items()
    }


def coverage(
    simulations: int, seeds: int, resamples: int = 1000, seed: int = 0, seed_spread: float = 0.02
) -> dict:
    """How often :func:`compare_rows`' intervals cover the population values, over
    ``simulations`` test sets of 40-60 images of the street population: for row A's interval,
    and for the interval of the difference A - B; with the mean position of the point estimate
    inside each interval (0 = its low end, 0.5 = the middle, 1 = its high end). With several
    seeds each (row, seed) shifts the row's recall by a draw of spread ``seed_spread``, and the
    population value averages over those shifts."""
    rng = np.random.default_rng(seed)
    truth = population_miou(rng, seed_shifts=rng.normal(0, seed_spread, 64) if seeds > 1 else None)
    target = {"row": truth["A"], "difference": truth["A"] - truth["B"]}
    hits = {"row": 0, "difference": 0}
    position = {"row": [], "difference": []}
    for number in range(simulations):
        pixels = _street_images(rng, int(rng.integers(40, 61)))
        shifts = rng.normal(0, seed_spread, (2, seeds)) if seeds > 1 else np.zeros((2, 1))
        evidence = [
            RowEvidence(
                name,
                list(range(seeds)),
                np.stack([_row_confusion(rng, pixels, recall, alarm, shift) for shift in shifts[row]]),
                [f"{i:05d}" for i in range(len(pixels))],
            )
            for row, (name, (recall, alarm)) in enumerate(POPULATION_ROWS.items())
        ]
        result = compare_rows(evidence, resamples, seed=number)
        for kind, (estimate, low, high) in {
            "row": (result.miou[0], result.ci_low[0], result.ci_high[0]),
            "difference": (
                result.difference[0, 1],
                result.difference_low[0, 1],
                result.difference_high[0, 1],
            ),
        }.items():
            hits[kind] += bool(low <= target[kind] <= high)
            position[kind].append((estimate - low) / (high - low) if high > low else 0.5)
    return {
        "simulations": simulations,
        "seeds": seeds,
        "population_miou": truth,
        "row_coverage": hits["row"] / simulations,
        "difference_coverage": hits["difference"] / simulations,
        "row_estimate_position": float(np.mean(position["row"])),
        "difference_estimate_position": float(np.mean(position["difference"])),
    }
