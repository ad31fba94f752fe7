"""Fusion-quality metrics: hand-checkable cases, input checks, and one real RoadScene pair."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fusion.metrics import CONVENTIONS, METRIC_NAMES, entropy, evaluate, mutual_information, qabf


def _ramp(h: int = 64, w: int = 80) -> np.ndarray:
    """Deterministic textured image with values 0..253 (no 254/255)."""
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 3 + y * 5 + (x * y) % 17) % 254).astype(np.uint8)


def _noise(seed: int, h: int = 64, w: int = 80) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def _luma(path: Path) -> np.ndarray:
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- keys, conventions, input checks
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_keys_and_order(convention):
    out = evaluate(_ramp(), _noise(1), _noise(2), convention=convention)
    assert tuple(out) == METRIC_NAMES == ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM")
    assert all(isinstance(v, float) for v in out.values())


def test_default_convention_is_python():
    f, a, b = _ramp(), _noise(1), _noise(2)
    assert evaluate(f, a, b) == evaluate(f, a, b, convention="python")
    assert CONVENTIONS == ("python", "matlab")


def test_unknown_convention_raises_listing_valid_ones():
    with pytest.raises(ValueError, match="python.*matlab"):
        evaluate(_ramp(), _ramp(), _ramp(), convention="octave")


def test_wrong_dtype_raises():
    img = _ramp()
    with pytest.raises(ValueError, match="uint8"):
        evaluate(img.astype(np.float32), img, img)
    with pytest.raises(ValueError, match="uint8"):
        evaluate(img, img.astype(np.int64), img)


def test_wrong_ndim_and_type_raise():
    img = _ramp()
    with pytest.raises(ValueError, match="2-D"):
        evaluate(np.stack([img] * 3, axis=-1), img, img)
    with pytest.raises(ValueError, match="numpy array"):
        evaluate(img.tolist(), img, img)


def test_too_small_raises():
    with pytest.raises(ValueError, match="7x7"):
        evaluate(*(np.zeros((6, 20), dtype=np.uint8),) * 3)


def test_size_mismatch_raises():
    img = _ramp()
    with pytest.raises(ValueError, match="same size"):
        evaluate(img, img[:-1], img)
    with pytest.raises(ValueError, match="same size"):
        evaluate(img, img, img[:, :-1])


# ---------------------------------------------------------------- hand-checkable single-image values
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_constant_image_has_zero_en_sd_sf_ag(convention):
    const = np.full((32, 48), 117, dtype=np.uint8)
    out = evaluate(const, _noise(1, 32, 48), _noise(2, 32, 48), convention=convention)
    assert out["EN"] == 0.0
    assert out["SD"] == 0.0
    assert out["SF"] == 0.0
    assert out["AG"] == 0.0


def test_entropy_two_equally_frequent_values_is_one_bit():
    img = np.zeros((16, 16), dtype=np.uint8)
    img[:, 8:] = 200
    assert entropy(img) == pytest.approx(1.0, abs=1e-12)


def test_sd_sf_ag_hand_values():
    # columns alternate 0, 10 -> population SD 5; horizontal diffs all 10, vertical 0 -> SF 10.
    img = np.tile(np.array([0, 10], dtype=np.uint8), (8, 5))
    out = evaluate(img, img, img)
    assert out["SD"] == pytest.approx(5.0)
    assert out["SF"] == pytest.approx(10.0)
    # np.gradient: interior central differences are 0, the two border columns are +-10 -> sqrt(100/2).
    h, w = img.shape
    border_sum = 2 * h * math.sqrt(50.0)
    assert out["AG"] == pytest.approx(border_sum / (h * w))
    assert evaluate(img, img, img, "matlab")["AG"] == pytest.approx(border_sum / ((h - 1) * (w - 1)))


# ---------------------------------------------------------------- mutual information
def test_mi_of_image_with_itself_is_twice_its_entropy_bits_and_nats():
    img = _ramp()
    h_bits = entropy(img)
    assert mutual_information(img, img, base="2") == pytest.approx(h_bits, rel=1e-12)
    out_m = evaluate(img, img, img, "matlab")
    assert out_m["MI"] == pytest.approx(2 * h_bits, rel=1e-12)
    out_p = evaluate(img, img, img, "python")
    assert out_p["MI"] == pytest.approx(2 * h_bits * math.log(2), rel=1e-12)  # nats


def test_mi_python_is_matlab_times_ln2_without_levels_254_255():
    f, a, b = _ramp(), np.minimum(_noise(3), 253), np.minimum(_noise(4), 253)
    mp = evaluate(f, a, b, "python")["MI"]
    mm = evaluate(f, a, b, "matlab")["MI"]
    assert mp == pytest.approx(mm * math.log(2), rel=1e-12)


def test_mi_matlab_merges_levels_254_and_255_in_the_joint_histogram():
    # MI_evaluation.m: H(a) = H(b) = 1 bit (MATLAB entropy, 256 bins), but Hab indexes
    # uint8(v) + 1, which saturates at 255, so the joint table holds one cell: H(a, b) = 0 and
    # MI = 1 + 1 - 0 = 2 bits. The exact-value table (python convention) gives H(a, b) = 1: ln 2.
    img = np.full((8, 8), 254, dtype=np.uint8)
    img[:, 4:] = 255
    assert mutual_information(img, img, base="2") == pytest.approx(2.0, abs=1e-12)
    assert mutual_information(img, img, base="e") == pytest.approx(math.log(2), abs=1e-12)
    # both sources and the fused image are the same: the matlab MI is 2 + 2 bits
    assert evaluate(img, img, img, "matlab")["MI"] == pytest.approx(4.0, abs=1e-12)


def test_mi_of_independent_constant_is_zero():
    const = np.full((20, 20), 3, dtype=np.uint8)
    assert mutual_information(const, _noise(5, 20, 20)) == 0.0


# ---------------------------------------------------------------- SSIM, SCD, VIF, Qabf
def test_ssim_of_identical_images():
    img = _ramp()
    assert evaluate(img, img, img, "matlab")["SSIM"] == pytest.approx(1.0, abs=1e-12)
    assert evaluate(img, img, img, "python")["SSIM"] == pytest.approx(2.0, abs=1e-6)


def test_vif_of_identical_images_is_two():
    img = _ramp()
    for convention in CONVENTIONS:
        assert evaluate(img, img, img, convention)["VIF"] == pytest.approx(2.0, rel=1e-9)


def test_scd_undefined_when_fused_equals_source_is_nan():
    img, other = _ramp(), _noise(6)
    assert math.isnan(evaluate(img, img, other)["SCD"])


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_qabf_fused_equal_to_one_source_is_well_defined(convention):
    a, b = _ramp(), _noise(7)
    q = qabf(a, a, b, convention)
    assert math.isfinite(q)
    assert 0.0 <= q <= 1.0
    assert evaluate(a, a, b, convention)["Qabf"] == q


def _impulse(value: int, background: int = 0) -> np.ndarray:
    img = np.full((12, 12), background, dtype=np.uint8)
    img[6, 6] = value
    return img


def test_qabf_hand_value_when_fused_copies_one_source():
    # analysis_Qabf.m by hand. Source A: one pixel of value v on 0 (vi flat: gB = 0, so only A's
    # edges count). conv2 Sobel of an impulse: the 4 edge neighbours get |S| = 2v (one of Sx, Sy),
    # the 4 diagonal ones |Sx| = |Sy| = v, so g = sqrt(2) v. Fused == A: every edge pixel is a tie
    # (gA == gF), so G = gF, and the orientations agree: A = 1, Q_a = Ta / (1 + e^{ka (1 - Da)}).
    # Qabf = sum(gA Q_g(gA)) Q_a / sum(gA) with Q_g(G) = Tg / (1 + e^{kg (G - Dg)}).
    tg, kg, dg, ta, ka, da = 0.9994, -15.0, 0.5, 0.9879, -22.0, 0.8
    q_a = ta / (1 + math.exp(ka * (1 - da)))

    def q_g(g):
        return tg / (1 + math.exp(kg * (g - dg)))

    def expected(v):  # v on the scale the script sees
        edge, diagonal = 2 * v, math.sqrt(2) * v
        return (4 * edge * q_g(edge) + 4 * diagonal * q_g(diagonal)) * q_a / (4 * edge + 4 * diagonal)

    a, flat = _impulse(51), np.zeros((12, 12), dtype=np.uint8)
    # matlab: im2double, v = 51/255 = 0.2: Q_g(0.4) = Tg / (1 + e^1.5) = 0.1823,
    # Q_g(0.283) = Tg / (1 + e^3.257) = 0.0370, Q_a = 0.9759 -> (0.2917 + 0.0419) / 2.7314 * 0.9759
    assert qabf(a, a, flat, "matlab") == pytest.approx(expected(0.2), rel=1e-9)
    assert qabf(a, a, flat, "matlab") == pytest.approx(0.1192, abs=1e-4)
    # python (CDDFuse, 0-255): v = 51, Q_g(102) = Tg: Qabf = Tg Q_a
    assert qabf(a, a, flat, "python") == pytest.approx(expected(51.0), rel=1e-9)
    assert qabf(a, a, flat, "python") == pytest.approx(tg * q_a, rel=1e-9)


def test_qabf_hand_value_without_ties_agrees_between_conventions():
    # Fused = A at half contrast (v/2 = 25.5 -> use v = 102, fused 51): no ties, G = gF/gA = 1/2 at
    # every edge pixel, orientations equal: Qabf = Q_g(0.5) Q_a = Tg/2 Q_a in both conventions.
    tg, ta, ka, da = 0.9994, 0.9879, -22.0, 0.8
    a, f, flat = _impulse(102), _impulse(51), np.zeros((12, 12), dtype=np.uint8)
    want = tg / 2 * ta / (1 + math.exp(ka * (1 - da)))
    for convention in CONVENTIONS:
        assert qabf(f, a, flat, convention) == pytest.approx(want, rel=1e-9)


def test_qabf_matlab_constants_and_sobel_orientation():
    from fusion.metrics import QABF_ORIENTATION, QABF_STRENGTH, SOBEL_X, SOBEL_Y

    assert QABF_STRENGTH == (0.9994, -15.0, 0.5) and QABF_ORIENTATION == (0.9879, -22.0, 0.8)
    assert SOBEL_Y.tolist() == [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]  # h1
    assert SOBEL_X.tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]  # h3


# ---------------------------------------------------------------- natural and real pairs
def _check_average_fusion(ir: np.ndarray, vi: np.ndarray) -> None:
    assert ir.shape == vi.shape
    fused = ((ir.astype(np.uint16) + vi.astype(np.uint16) + 1) // 2).astype(np.uint8)

    py = evaluate(fused, ir, vi, "python")
    ml = evaluate(fused, ir, vi, "matlab")
    for out in (py, ml):
        assert all(math.isfinite(v) for v in out.values()), out
        assert 0 < out["EN"] <= 8
        assert out["SD"] > 0 and out["SF"] > 0 and out["AG"] > 0
        assert out["MI"] > 0
        assert 0 < out["Qabf"] < 1
        assert 0 < out["VIF"] < 2
        assert 0 < out["SCD"] < 2
    assert 0 < ml["SSIM"] < 1
    assert 0 < py["SSIM"] < 2
    # shared definitions agree; the convention-specific ones differ as documented
    for k in ("EN", "SD", "SF", "SCD", "VIF"):
        assert py[k] == pytest.approx(ml[k], rel=1e-12)
    assert ml["AG"] > py["AG"]
    # nats vs bits, except that the MATLAB joint histogram merges levels 254/255 (raises MI)
    assert py["MI"] / math.log(2) <= ml["MI"] <= py["MI"] / math.log(2) * 1.01
    # average fusion keeps a lot of both sources: MI above that of an unrelated image
    unrelated = np.roll(fused, (fused.shape[0] // 2, fused.shape[1] // 2), axis=(0, 1))
    assert py["MI"] > evaluate(unrelated, ir, vi)["MI"]


def test_photo_pair_average_fusion(photo_pairs):
    _check_average_fusion(_luma(photo_pairs / "ir" / "coffee.jpg"), _luma(photo_pairs / "vi" / "coffee.jpg"))


@pytest.mark.real_data
def test_real_roadscene_pair_average_fusion(real_data):
    folder = real_data / "roadscene-50"
    _check_average_fusion(_luma(folder / "ir" / "FLIR_00211.jpg"), _luma(folder / "vi" / "FLIR_00211.jpg"))
