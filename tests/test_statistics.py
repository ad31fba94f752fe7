"""Intervals and paired comparisons of mIoU from per-image confusion matrices."""

import numpy as np
import pytest
import torch

from segmentation.evaluate import (
    confusion_matrix,
    confusion_per_image,
    load_confusion_per_image,
    save_confusion_per_image,
    scores,
)
from segmentation.statistics import (
    RowEvidence,
    best_versus_second,
    compare_rows,
    holm,
    image_variance,
    miou_from_confusion,
    null_false_positive_rate,
)

CLASSES = 9


def _confusions(rng, accuracy: float, seeds: int = 1, images: int = 60) -> np.ndarray:
    """(seeds, images, C, C): every class's pixels are right with probability ``accuracy``, the
    rest spread over the other classes; classes are absent from an image now and then."""
    out = np.zeros((seeds, images, CLASSES, CLASSES), np.int64)
    for s in range(seeds):
        for n in range(images):
            pixels = rng.integers(200, 2000, CLASSES) * (rng.random(CLASSES) > 0.3)
            for c in range(CLASSES):
                right = rng.binomial(pixels[c], accuracy)
                wrong = rng.multinomial(pixels[c] - right, np.full(CLASSES - 1, 1 / (CLASSES - 1)))
                out[s, n, c] = np.insert(wrong, c, right)
    return out


def _row(label, confusion, names=None):
    names = names or [f"{i:05d}" for i in range(confusion.shape[1])]
    return RowEvidence(label, list(range(confusion.shape[0])), confusion, names)


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(3)
    return [
        _row("strong", _confusions(rng, 0.80)),
        _row("weak", _confusions(rng, 0.74)),
        _row("twin a", _confusions(rng, 0.60)),
        _row("twin b", _confusions(rng, 0.60)),
    ]


def test_intervals_separate_a_real_gap_and_not_noise(rows):
    result = compare_rows(rows)
    strong, weak = result.index("strong"), result.index("weak")
    twin_a, twin_b = result.index("twin a"), result.index("twin b")
    assert result.difference[strong, weak] > 0
    assert result.significant[strong, weak] and result.difference_low[strong, weak] > 0
    assert not result.significant[twin_a, twin_b]
    assert result.difference_low[twin_a, twin_b] < 0 < result.difference_high[twin_a, twin_b]
    # rank groups: strong alone on top, the twins share the last group
    assert result.rank_group[strong] == 1 and result.rank_group[weak] == 2
    assert result.rank_group[twin_a] == result.rank_group[twin_b] == 3
    assert best_versus_second(result) == ("strong", "weak", True)
    # the interval holds the point estimate, and the point estimate is the split mIoU
    assert np.all(result.ci_low < result.miou) and np.all(result.miou < result.ci_high)
    assert result.miou[strong] == pytest.approx(scores(rows[0].confusion[0].sum(0))["miou"])


def test_pairing_same_images_for_every_row(rows):
    """A row and a copy of it shifted by a small constant gain differ on every image by the same
    sign: pairing makes even a small gap significant, where unpaired intervals overlap."""
    base = rows[2].confusion.copy()
    better = base.copy()
    diagonal = np.arange(CLASSES)
    present = better[:, :, diagonal, diagonal] > 0
    better[:, :, diagonal, diagonal] += 4 * present  # a few more right pixels in every image
    result = compare_rows([_row("base", base), _row("better", better)])
    assert result.significant[1, 0] and result.difference_low[1, 0] > 0
    assert result.ci_low[1] < result.ci_high[0]  # the single-row intervals overlap


def test_deterministic_and_centred(rows):
    first, second = compare_rows(rows), compare_rows(rows)
    assert np.array_equal(first.ci_low, second.ci_low)
    assert np.array_equal(first.p_holm, second.p_holm, equal_nan=True)
    assert first.miou - first.ci_low == pytest.approx(first.ci_high - first.miou)
    assert first.difference[0, 1] == -first.difference[1, 0]
    assert first.difference_low[0, 1] == -first.difference_high[1, 0]


def test_several_seeds_and_differing_seed_counts():
    rng = np.random.default_rng(4)
    three = _row("three seeds", _confusions(rng, 0.7, seeds=3, images=30))
    one = _row("one seed", _confusions(rng, 0.7, seeds=1, images=30))
    result = compare_rows([three, one])
    assert list(result.seeds) == [3, 1]
    per_seed = [scores(three.confusion[s].sum(0))["miou"] for s in range(3)]
    assert result.miou[0] == pytest.approx(np.mean(per_seed))


def test_rows_over_different_images_are_refused(rows):
    moved = _row("moved", rows[1].confusion, names=[f"x{i}" for i in range(60)])
    with pytest.raises(ValueError, match="moved: its test images differ"):
        compare_rows([rows[0], moved])
    with pytest.raises(ValueError, match="no rows"):
        compare_rows([])


def test_holm_adjustment():
    adjusted = holm(np.array([0.04, 0.01, 0.03]))
    assert adjusted == pytest.approx([0.06, 0.03, 0.06])
    assert holm(np.array([0.5, 0.9])) == pytest.approx([1.0, 1.0])  # monotone, capped


def test_miou_matches_evaluate_scores_with_absent_classes():
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 50, (CLASSES, CLASSES))
    matrix[4, :] = 0
    matrix[:, 4] = 0  # class 4 absent from prediction and ground truth
    assert miou_from_confusion(matrix) == pytest.approx(scores(matrix)["miou"])


def test_per_image_confusion_sums_to_split_matrix_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, CLASSES, (5, 12, 16)).astype(np.uint8)
    labels[0, :2] = 255  # ignored pixels
    predictions = rng.integers(0, CLASSES, (5, 12, 16)).astype(np.uint8)
    per_image = confusion_per_image(predictions, labels).numpy()
    assert per_image.shape == (5, CLASSES, CLASSES) and per_image.dtype == np.int64
    whole = confusion_matrix(torch.from_numpy(predictions), torch.from_numpy(labels)).numpy()
    assert np.array_equal(per_image.sum(0), whole)
    for image in range(5):  # one image at a time, as numpy counts it
        keep = labels[image] != 255
        index = labels[image][keep].astype(np.int64) * CLASSES + predictions[image][keep]
        assert np.array_equal(per_image[image], np.bincount(index, minlength=CLASSES**2).reshape(CLASSES, -1))
    assert per_image[1].sum() == 12 * 16 and per_image[0].sum() == 12 * 16 - 2 * 16
    names = [f"{i:05d}D" for i in range(5)]
    path = save_confusion_per_image(tmp_path / "c.npz", names, per_image)
    confusion, loaded_names = load_confusion_per_image(path)
    assert np.array_equal(confusion, per_image) and loaded_names == names


def test_unreadable_confusion_file_names_the_file(tmp_path):
    bad = tmp_path / "confusion_per_image.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="confusion_per_image.npz"):
        load_confusion_per_image(bad)


# ----------------------------------------------------------------------------- few seeds


def _seed_shifted(base: np.ndarray, shifts: list[float]) -> np.ndarray:
    """(S, N, C, C): ``base`` (N, C, C) with, per seed, the given share of every class's right
    pixels moved to the next class (a training-run effect on all images at once)."""
    out = []
    index = np.arange(CLASSES)
    for shift in shifts:
        confusion = base.astype(np.int64).copy()
        moved = np.rint(confusion[:, index, index] * shift).astype(np.int64)
        confusion[:, index, index] -= moved
        confusion[:, index, (index + 1) % CLASSES] += moved
        out.append(confusion)
    return np.stack(out)


def test_three_seed_differences_are_judged_by_their_spread():
    """Seed differences of about +1, +0.5 and +0.1 points with little image noise: resampling
    the three seeds called this p = 0.0002; the spread of three seeds cannot support that (a
    paired t-test over the seeds gives about 0.18)."""
    rng = np.random.default_rng(7)
    base = _confusions(rng, 0.7, images=60)[0]
    a = RowEvidence("a", [0, 1, 2], _seed_shifted(base, [0.0, 0.0, 0.0]), [f"{i}" for i in range(60)])
    b = RowEvidence("b", [0, 1, 2], _seed_shifted(base, [0.016, 0.008, 0.0016]), a.names)
    result = compare_rows([a, b])
    per_seed = [
        miou_from_confusion(a.confusion[s].sum(0)) - miou_from_confusion(b.confusion[s].sum(0))
        for s in range(3)
    ]
    assert 0.05 < per_seed[2] < per_seed[1] < per_seed[0] < 2  # the gaps shrink seed by seed
    assert result.p_value[0, 1] > 0.1 and not result.significant[0, 1]
    assert result.difference_low[0, 1] < 0 < result.difference_high[0, 1]


def test_seeds_pair_by_value_and_only_over_common_seeds():
    rng = np.random.default_rng(8)
    base = _confusions(rng, 0.7, images=40)[0]
    names = [f"{i}" for i in range(40)]
    shifts = {0: 0.0, 1: 0.01, 2: 0.02, 3: 0.03}
    first = RowEvidence("first", [0, 1, 2], _seed_shifted(base, [shifts[s] for s in (0, 1, 2)]), names)
    second = RowEvidence("second", [2, 1, 3], _seed_shifted(base, [shifts[s] for s in (2, 1, 3)]), names)
    result = compare_rows([first, second])
    assert result.difference[0, 1] == pytest.approx(0.0, abs=1e-9)  # seeds 1 and 2 are the same runs
    alone = RowEvidence("alone", [9], base[None], names)
    apart = compare_rows([first, alone])
    assert np.isnan(apart.p_value[0, 1]) and not apart.significant[0, 1]  # no common seed: not compared


def test_class_set_comes_from_the_ground_truth_for_every_row():
    """A class absent from the ground truth but predicted by one row is left out for every row
    alike; the rows are then scored over the same classes."""
    rng = np.random.default_rng(9)
    base = _confusions(rng, 0.7, images=30)
    base[..., 6, :] = 0  # no guardrail in the ground truth of any image
    noisy = base.copy()
    moved = np.minimum(noisy[..., 0, 0], 50)  # one row predicts guardrail on background pixels
    noisy[..., 0, 6] += moved
    noisy[..., 0, 0] -= moved
    names = [f"{i}" for i in range(30)]
    result = compare_rows([RowEvidence("a", [0], base, names), RowEvidence("b", [0], noisy, names)])
    present = np.arange(CLASSES) != 6
    assert result.miou[1] == pytest.approx(miou_from_confusion(noisy[0].sum(0), present))
    assert scores(noisy[0].sum(0))["per_class_iou"]["guardrail"] is None  # metrics.json agrees
    assert abs(result.difference[0, 1]) < 1.5  # some background pixels lost, no class scored 0
    scored_zero = miou_from_confusion(noisy[0].sum(0), present | (np.arange(CLASSES) == 6))
    assert result.miou[0] - scored_zero > 5  # what counting guardrail as 0 for row b would do


def test_holm_can_reach_significance_with_many_rows():
    rng = np.random.default_rng(10)
    weak = _confusions(rng, 0.4, images=60)
    rows = [_row(f"row{r}", weak) for r in range(22)] + [_row("strong", _confusions(rng, 0.9, images=60))]
    result = compare_rows(rows)
    assert result.significant[22, 0] and result.rank_group[0] >= 2


@pytest.mark.parametrize("seeds", [3, 5])
@pytest.mark.parametrize("seed_noise", [1.0, 3.0])
def test_equal_rows_are_rarely_called_different(seeds, seed_noise):
    """Null simulations (pipelines/benchmark.py stats-null runs 1000 a setting): the rate stays
    near or below the nominal 5%; resampling seeds rejected 13 to 23% of such pairs."""
    assert null_false_positive_rate(200, 60, seeds, seed_noise, seed=seeds) <= 0.08


def test_coverage_simulation_is_deterministic_and_reads_the_population():
    from segmentation.statistics import POPULATION_ROWS, coverage

    first = coverage(12, 1, seed=3)
    assert first == coverage(12, 1, seed=3)
    assert set(first["population_miou"]) == set(POPULATION_ROWS)
    assert first["population_miou"]["A"] > first["population_miou"]["B"]  # B misses two classes
    for key in (
        "row_coverage",
        "difference_coverage",
        "row_estimate_position",
        "difference_estimate_position",
        "row_coverage_all_classes",
        "difference_coverage_all_classes",
        "missing_class",
    ):
        assert 0.0 <= first[key] <= 1.0


def test_intervals_cover_on_test_sets_with_rare_classes():
    """Street-scene test sets of 40-60 images with classes in 2-10 % of images (benchmark.py
    stats-coverage runs 1000): an image bootstrap covered 87 % (rows) with its estimate at 0.22
    of the interval; the moderated delta method about 95 %, centred."""
    from segmentation.statistics import coverage

    result = coverage(200, 1, seed=11)
    assert result["row_coverage"] >= 0.9 and result["difference_coverage"] >= 0.9
    assert result["row_estimate_position"] == pytest.approx(0.5)


def test_a_class_in_one_image_gets_the_pooled_variance():
    """One image holds class 2: alone it says nothing of how that class's IoU varies from image
    to image, so its variance is the object classes' pooled per-image variance over one image,
    not zero (the bootstrap's answer)."""
    rng = np.random.default_rng(12)
    images, classes = 40, 3
    union = np.zeros((images, classes))
    union[:, 0], union[:, 1] = 1000.0, 100.0
    union[7, 2] = 50.0
    contribution = np.zeros((images, classes))
    contribution[:, 1] = rng.normal(0, 0.1, images) / images  # per-image IoU spread 0.1 over 40 images
    contribution[:, 1] -= contribution[:, 1].mean()
    present = np.ones(classes, bool)
    alone = image_variance(contribution * [1, 1, 0], union * [1, 1, 0], np.array([True, True, False]))
    with_rare = image_variance(contribution, union, present)
    spread = (contribution[:, 1] ** 2).sum() * images / (images - 1) * images  # class 1's per-image variance
    # class 1 (39 degrees of freedom) is the pool; background's none is moderated towards it
    # with d_0 = 4; class 2 (no degrees of freedom) takes the pool whole, over its one image
    background, objects = 4 * spread / (39 + 4) / images, spread / images
    assert alone == pytest.approx((background + objects) * (100 / 2) ** 2, rel=1e-9)
    assert with_rare == pytest.approx((background + objects + spread) * (100 / 3) ** 2, rel=1e-9)
