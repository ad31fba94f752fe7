"""How sure is Table 2? Confidence intervals and paired comparisons of mIoU that cover what they
claim on test splits where some classes are in a few images only, with few training seeds.

The evidence is each segmentation run's per-image confusion matrices on the test split
(``confusion_per_image.npz``, written by segmentation.evaluate), so nothing is retrained.
Two sources of noise are measured: which test images were drawn and which training run a seed
gave (the spread between seeds). Method (all of it in :func:`compare_rows`):

- **What is estimated**: a row's mIoU over the classes present in the *ground truth of the test
  split* (the same classes for every row; a class only predicted is left out of every row alike),
  as ``segmentation.evaluate.scores`` and Table 2. The interval is for that mIoU on the
  population of images the test split was drawn from; a class the split does not hold is in no
  number and no interval speaks for it.
- **Point estimate** of a row: the mean over its seeds of the test split's mIoU, which equals
  the mean of its ``metrics.json`` values.
- **Test images** (the delta method): each class's IoU is a ratio of pixel sums over images, so
  its error is, to first order, a sum of each image's contribution ``(TP_ic - IoU_c U_ic) / U_c``
  (U: the union of ground truth and prediction); the variance of mIoU is that of the sum over
  images of those contributions averaged over classes, covariances between classes included.
  Every image stays in (no resampling), so no rule is needed for a class a draw would leave out.
- **Classes in a few images** (a moderated variance): the spread of a class's IoU from image to
  image is estimated with its images - 1 degrees of freedom, which is nothing for a class in one
  image and little for one in two or three, where an image bootstrap gave intervals covering 60-80 %
  instead of 95 % (``pipelines/benchmark.py stats-coverage``). DECISION (ours, after Smyth's
  moderated variances, limma, 2004): each class's per-image variance is shrunk towards the pooled
  per-image variance of the object classes, ``(d_c s_c^2 + d_0 s_0^2) / (d_c + d_0)`` with
  ``d_c`` = images holding the class - 1 and ``d_0`` = :data:`PRIOR_DEGREES` (ours); the first
  class (background, most of every image, its IoU near 1 in each) is left out of the pool. A
  class's variance of IoU is its per-image variance over its effective number of images (Kish:
  ``U_c^2 / sum_i U_ic^2``).
- **One seed**: a row's (and a difference's) 95% interval is the estimate +- 1.96 standard
  errors; the two-sided p-value of a difference is the normal one. This covers the test images
  only.
- **Several seeds** (a random effect): the variance of a mean over S seeds is the image variance
  of the seed mean plus the between-seed variance over S (training noise). DECISION (ours): the
  interval's half-width is ``sqrt(z^2 V_images + t^2 V_seeds)``, each part scaled by its own
  reference's quantile (z normal for the images; t with S - 1 degrees of freedom, those of the
  between-seed variance), and the p-value is the level whose interval just reaches zero. It is a
  t interval with S - 1 degrees of freedom when training noise dominates and a normal one when
  the test images do. One t with S - 1 degrees of freedom for the whole variance covered 100 %
  in the coverage simulation with 3 seeds (conservative when the images dominate);
  Welch-Satterthwaite's degrees of freedom rejected 6-8 % of equal pairs at a nominal 5 % in the
  null simulations. Resampling the S seeds instead would make that part of an interval about
  [min, max] of the seeds and reject far too often (``pipelines/benchmark.py stats-null``).
- **Pairs of rows** are compared over the seeds both have, paired by seed *value* and by image
  (the image contributions of the two rows are subtracted image by image); rows with no seed in
  common are not compared (NaN).
- **Multiple comparisons**: Holm's step-down correction over every pair of rows. A difference is
  *significant* when its Holm-adjusted p is below ``alpha``.
- **Rank group**: 1 + the number of rows significantly better than the row. It says only that:
  two rows of one group are not thereby shown to be equal.

Deterministic: no random draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm
from scipy.stats import t as t_distribution

PRIOR_DEGREES = 4  # d_0 of the moderated per-class variance (module docstring; ours)
SMALLEST_P = 1e-12  # p-values of several seeds are found down to this


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


def _influence(confusion: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) each image's first-order contribution to each present class's IoU (zero for the
    other classes) and (N, C) the union pixels of ground truth and prediction, from (N, C, C)
    confusion matrices (module docstring, "Test images")."""
    confusion = confusion.astype(np.float64)
    true_positive = np.diagonal(confusion, axis1=-2, axis2=-1)
    union = confusion.sum(-1) + confusion.sum(-2) - true_positive
    total = union.sum(0)
    iou = np.divide(true_positive.sum(0), total, out=np.zeros_like(total), where=total > 0)
    contribution = np.divide(true_positive - iou * union, total, out=np.zeros_like(union), where=total > 0)
    return contribution * present, union


def image_variance(contribution: np.ndarray, union: np.ndarray, present: np.ndarray) -> float:
    """Variance (mIoU in %, squared) that the choice of test images gives a statistic whose image
    contributions per class are ``contribution`` (N, C), with per-class variances moderated
    towards the object classes' pooled one (module docstring, "Classes in a few images").
    ``union`` (N, C): the pixels behind each contribution, for the effective image counts."""
    images = len(contribution)
    classes = int(present.sum())
    if images < 2 or classes == 0:
        return 0.0
    correction = images / (images - 1)
    total = correction * float((contribution.sum(1) ** 2).sum())  # covariances included
    holding = ((union > 0) & present).sum(0)
    summed = union.sum(0)
    effective = np.divide(summed**2, (union**2).sum(0), out=np.zeros_like(summed), where=summed > 0)
    freedom = np.maximum(holding - 1, 0).astype(np.float64)
    spread = np.divide(
        (contribution**2).sum(0) * holding * effective, freedom, out=np.zeros_like(summed), where=freedom > 0
    )  # per-image variance of each class's IoU, unbiased for its images
    objects = freedom * (np.arange(len(freedom)) > 0)
    weights = objects if objects.sum() > 0 else freedom
    pooled = float((weights * spread).sum() / weights.sum()) if weights.sum() > 0 else 0.0
    moderated = (freedom * spread + PRIOR_DEGREES * pooled) / (freedom + PRIOR_DEGREES)
    own = np.divide(moderated, effective, out=np.zeros_like(summed), where=present & (effective > 0))
    variance = total - correction * float((contribution**2).sum()) + float(own.sum())
    return max(variance, 0.0) * (100 / classes) ** 2


def _mean_and_spread(values: np.ndarray, images: float, alpha: float) -> tuple[float, float, float, float]:
    """(estimate, interval low, high, two-sided p against 0) of the mean over seeds of
    ``values`` (S,), whose variance from the choice of test images is ``images``: each part of
    the variance scaled by its own reference's quantile (module docstring, "Several seeds")."""
    estimate = float(values.mean())
    seeds = len(values)
    between = float(values.var(ddof=1)) / seeds if seeds > 1 else 0.0
    if images + between <= 0:
        return estimate, estimate, estimate, (1.0 if estimate == 0 else 0.0)

    def half_width(level: float) -> float:
        squared = float(norm.ppf(1 - level / 2)) ** 2 * images
        if seeds > 1:
            squared += float(t_distribution.ppf(1 - level / 2, seeds - 1)) ** 2 * between
        return float(np.sqrt(squared))

    half = half_width(alpha)
    if seeds == 1:
        p = float(2 * norm.sf(abs(estimate) / np.sqrt(images)))
    elif half_width(SMALLEST_P) <= abs(estimate):
        p = SMALLEST_P
    else:  # the level whose interval just reaches zero
        p = float(brentq(lambda level: half_width(level) - abs(estimate), SMALLEST_P, 1.0))
    return estimate, estimate - half, estimate + half, p


def compare_rows(evidence: list[RowEvidence], alpha: float = 0.05) -> Comparison:
    """Intervals and paired comparisons of the rows of ``evidence`` (the same test images, in
    the same order, in every row; seed lists may differ), as the module docstring says."""
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
    present = evidence[0].confusion[0].sum((0, 2)) > 0  # classes in the test split's ground truth
    per_seed = [miou_from_confusion(row.confusion.sum(1), present) for row in evidence]  # (S,)
    influence = [[_influence(confusion, present) for confusion in row.confusion] for row in evidence]

    def seed_mean(row: int, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
        index = [evidence[row].seeds.index(s) for s in seeds]
        contribution = np.mean([influence[row][i][0] for i in index], axis=0)
        return contribution, np.sum([influence[row][i][1] for i in index], axis=0)

    miou, ci_low, ci_high = np.empty(rows), np.empty(rows), np.empty(rows)
    for r in range(rows):
        contribution, union = seed_mean(r, evidence[r].seeds)
        variance = image_variance(contribution, union, present)
        miou[r], ci_low[r], ci_high[r], _ = _mean_and_spread(per_seed[r], variance, alpha)
    difference, low, high, p_value = (np.full((rows, rows), np.nan) for _ in range(4))
    for i in range(rows):
        for j in range(i + 1, rows):
            common = sorted(set(evidence[i].seeds) & set(evidence[j].seeds))
            if not common:
                continue
            (first, first_union), (second, second_union) = seed_mean(i, common), seed_mean(j, common)
            variance = image_variance(first - second, first_union + second_union, present)
            a = [evidence[i].seeds.index(s) for s in common]
            b = [evidence[j].seeds.index(s) for s in common]
            estimate, lo, hi, p = _mean_and_spread(per_seed[i][a] - per_seed[j][b], variance, alpha)
            difference[i, j], low[i, j], high[i, j], p_value[i, j] = estimate, lo, hi, p
            difference[j, i], low[j, i], high[j, i], p_value[j, i] = -estimate, -hi, -lo, p
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
    simulations: int, images: int, seeds: int, seed_noise: float, seed: int = 0
) -> float:
    """Share of :func:`simulate_null_pair` pairs that :func:`compare_rows` calls significantly
    different at its ``alpha`` (0.05): should be at most about 0.05."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(simulations):
        result = compare_rows(simulate_null_pair(rng, images, seeds, seed_noise))
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


def population_iou(
    rng: np.random.Generator, images: int = 20_000, seed_shifts: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Each row's IoU per class (%, (C,)) on a large population of images, averaged over the
    seed shifts given (none: one unshifted seed): what the intervals should cover."""
    pixels = _street_images(rng, images)
    shifts = np.zeros(1) if seed_shifts is None else seed_shifts
    out = {}
    for name, (recall, alarm) in POPULATION_ROWS.items():
        per_shift = []
        for shift in shifts:
            matrix = _row_confusion(rng, pixels, recall, alarm, shift).sum(0).astype(np.float64)
            true_positive = np.diagonal(matrix)
            per_shift.append(100 * true_positive / (matrix.sum(0) + matrix.sum(1) - true_positive))
        out[name] = np.mean(per_shift, axis=0)
    return out


def coverage(simulations: int, seeds: int, seed: int = 0, seed_spread: float = 0.02) -> dict:
    """How often :func:`compare_rows`' intervals cover the population values, over
    ``simulations`` test sets of 40-60 images of the street population: for row A's interval,
    and for the interval of the difference A - B; with the mean position of the point estimate
    inside each interval (0 = its low end, 0.5 = the middle, 1 = its high end). The population
    value is that of what is estimated: the population's mIoU over the classes the test set
    holds (module docstring); ``*_coverage_all_classes`` is over all nine, which a test set
    missing a class cannot speak for (``missing_class``: the share of such test sets). With
    several seeds each (row, seed) shifts the row's recall by a draw of spread ``seed_spread``,
    and the population value averages over those shifts."""
    rng = np.random.default_rng(seed)
    truth = population_iou(rng, seed_shifts=rng.normal(0, seed_spread, 64) if seeds > 1 else None)
    hits = {"row": 0, "difference": 0, "row_all": 0, "difference_all": 0}
    position = {"row": [], "difference": []}
    missing = 0
    for _ in range(simulations):
        pixels = _street_images(rng, int(rng.integers(40, 61)))
        present = pixels.sum(0) > 0
        missing += not present.all()
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
        result = compare_rows(evidence)
        targets = {
            "row": (truth["A"][present].mean(), truth["A"].mean()),
            "difference": ((truth["A"] - truth["B"])[present].mean(), (truth["A"] - truth["B"]).mean()),
        }
        for kind, (estimate, low, high) in {
            "row": (result.miou[0], result.ci_low[0], result.ci_high[0]),
            "difference": (
                result.difference[0, 1],
                result.difference_low[0, 1],
                result.difference_high[0, 1],
            ),
        }.items():
            held, every = targets[kind]
            hits[kind] += bool(low <= held <= high)
            hits[f"{kind}_all"] += bool(low <= every <= high)
            position[kind].append((estimate - low) / (high - low) if high > low else 0.5)
    return {
        "simulations": simulations,
        "seeds": seeds,
        "population_miou": {name: float(iou.mean()) for name, iou in truth.items()},
        "row_coverage": hits["row"] / simulations,
        "difference_coverage": hits["difference"] / simulations,
        "row_estimate_position": float(np.mean(position["row"])),
        "difference_estimate_position": float(np.mean(position["difference"])),
        "row_coverage_all_classes": hits["row_all"] / simulations,
        "difference_coverage_all_classes": hits["difference_all"] / simulations,
        "missing_class": missing / simulations,
    }
