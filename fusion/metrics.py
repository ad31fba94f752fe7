"""Fusion-quality metrics of a fused image against its two sources (Table 1).

All metrics work on 8-bit grayscale (luma) images: ``uint8`` arrays of shape ``(H, W)``. The one
public entry point is :func:`evaluate`, which returns ``EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM``
(in that order) under one of two conventions, because the field uses two:

``"python"`` (default)
    The Python evaluator most fusion papers use, ``Zhaozixiang1228/MMIF-CDDFuse``
    ``utils/Evaluator.py`` (pinned env: scikit-image 0.19.2, scikit-learn 1.1.3, scipy 1.7.3).
    MI in nats from an exact-value contingency table (sklearn ``mutual_info_score``), VIF and SSIM
    *summed* over the two sources, SSIM with scikit-image's implicit ``data_range=2`` for float
    images (see :func:`ssim_skimage`).

``"matlab"``
    The MATLAB scripts (``Linfeng-Tang/Evaluation-for-Image-Fusion`` ``analysis_Reference.m`` and
    its helpers, copies read from ``Linfeng-Tang/SeAFusion`` ``Evaluation/``; VIFB
    ``xingchenzhang/VIFB`` ``metrics/`` where Linfeng-Tang has no SSIM). MI in bits from
    256-bin histograms (Qu Xiao-Bo ``MI_evaluation``), AG divided by ``(H-1)(W-1)``, VIF summed,
    SSIM = mean of MATLAB ``ssim`` against the two sources (11x11 Gaussian, sigma 1.5), Qabf on
    ``im2double`` (0-1) images as ``analysis_Reference.m`` calls it.

Deliberate deviations from the MATLAB scripts (documented, not reproduced): the scripts pass
``uint8`` arrays from ``imread`` straight into ``SD_evaluation``, ``vifp_mscale`` and the MI
joint histogram, where MATLAB's *saturating* integer arithmetic changes the result (``F - mean``
clips at 0 and ``.^2`` at 255 in SD; ``ref.*ref`` saturates at 255 at VIF scale 1). Those are
accidental integer-class bugs that depend on how the caller loaded the image (a later
Linfeng-Tang copy already wraps SD in ``double()``), so the ``matlab`` convention computes those
on double-precision data. The one integer effect that *is* reproduced is MI's joint histogram
(``255+1`` stays 255 in ``Hab``, merging grey levels 254/255; see :func:`mutual_information`):
it is what every MATLAB MI in the literature carries, and it moves MI by about 1 % on images
with saturated regions. Qabf runs on ``im2double`` values in float64 as the script does (see
:func:`qabf` for what that changes). Likewise SF is computed on 0-255 in both conventions; the Linfeng-Tang
driver feeds SF ``im2double`` images (SF 255x smaller) while VIFB uses 0-255 but divides both
squared-difference sums by ``H*W``; neither variant is used here.

Speed: vectorised numpy/scipy, no Python pixel loops. All nine metrics for one 640x480 triple
take 0.24-0.45 s (both conventions; median of 20 runs, varying with load) on the shared 2-core
dev machine, measured with ``time.perf_counter``; VIF (two 4-scale pyramids) and Qabf dominate.
Checked against a transcription of CDDFuse ``Evaluator.py`` (+ scikit-learn / scikit-image
``structural_similarity(..., data_range=2)`` on float32) on a RoadScene pair: all nine values
agree to <= 1e-7 relative (the reference runs in float32).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d, uniform_filter

__all__ = ["CONVENTIONS", "METRIC_NAMES", "evaluate"]

METRIC_NAMES: tuple[str, ...] = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM")
CONVENTIONS: tuple[str, ...] = ("python", "matlab")


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
def _check_image(name: str, img: object) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (8-bit grayscale), got dtype {img.dtype}")
    if img.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) grayscale image, got shape {img.shape}")
    if img.shape[0] < 7 or img.shape[1] < 7:
        # the 7x7 SSIM window (scikit-image refuses smaller images) is the binding limit
        raise ValueError(f"{name} must be at least 7x7 pixels, got shape {img.shape}")
    return img


def _check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; valid conventions: {', '.join(CONVENTIONS)}")
    return convention


# --------------------------------------------------------------------------------------------
# single-image metrics
# --------------------------------------------------------------------------------------------
def entropy(img: np.ndarray) -> float:
    """EN: Shannon entropy in bits of the 256-bin grey-level histogram.

    CDDFuse ``EN`` (``bincount`` of ``uint8(round(F))``, ``-sum h log2 h``) and MATLAB ``entropy``
    on a ``uint8`` image give the same number; empty bins contribute 0.
    """
    counts = np.bincount(img.ravel(), minlength=256)
    return _entropy_from_counts(counts, np.log2)


def _entropy_from_counts(counts: np.ndarray, log) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * log(p)).sum())


def standard_deviation(img: np.ndarray) -> float:
    """SD: population standard deviation (divides by ``H*W``) on 0-255 values.

    ``np.std`` in CDDFuse; ``SD_evaluation.m`` is the same formula (on ``double`` data, see the module
    docstring for the ``uint8`` saturation that the MATLAB driver would otherwise hit).
    """
    return float(np.std(img.astype(np.float64)))


def spatial_frequency(img: np.ndarray) -> float:
    """SF = sqrt(RF^2 + CF^2) on 0-255 values.

    RF^2 is the mean of the squared horizontal first differences over its own ``H*(W-1)`` terms and
    CF^2 the mean of the vertical ones over ``(H-1)*W`` (CDDFuse ``SF``; ``SF_evaluation.m`` uses the
    same ``diff``/``mean`` formula).
    """
    f = img.astype(np.float64)
    rf2 = np.mean((f[:, 1:] - f[:, :-1]) ** 2)
    cf2 = np.mean((f[1:, :] - f[:-1, :]) ** 2)
    return float(np.sqrt(rf2 + cf2))


def average_gradient(img: np.ndarray, convention: str = "python") -> float:
    """AG = mean of sqrt((Gx^2 + Gy^2) / 2) on 0-255 values.

    Gx, Gy are central differences inside and one-sided differences on the border rows/columns
    (``np.gradient`` = MATLAB ``gradient``). ``python`` (CDDFuse) averages over all ``H*W`` pixels;
    ``matlab`` (``AG_evaluation.m``, VIFB ``metricsAvg_gradient.m``) divides the *sum* by
    ``(H-1)*(W-1)``, about 0.4 % larger on 480x640.
    """
    f = img.astype(np.float64)
    gy, gx = np.gradient(f)
    s = np.sqrt((gx * gx + gy * gy) / 2.0)
    if convention == "matlab":
        h, w = f.shape
        return float(s.sum() / ((h - 1) * (w - 1)))
    return float(s.mean())


# --------------------------------------------------------------------------------------------
# two-image helpers
# --------------------------------------------------------------------------------------------
def mutual_information(a: np.ndarray, b: np.ndarray, base: str = "e") -> float:
    """Mutual information of two uint8 images from their joint histogram.

    ``base="e"``: nats, H(a) + H(b) - H(a, b) from the exact-value contingency table (sklearn
    ``mutual_info_score`` on the flattened pixel values, which clips a tiny negative round-off to 0).

    ``base="2"``: bits, as the MATLAB ``MI_evaluation`` (Qu Xiao-Bo) that ``analysis_Reference.m``
    calls with the ``uint8`` images of ``imread``: H(a) and H(b) from MATLAB ``entropy`` (256 bins),
    H(a, b) from ``Hab``, which indexes a 256x256 table with ``uint8(v) + 1``. MATLAB integer
    arithmetic saturates, so 255 + 1 stays 255: grey levels 254 and 255 share one row and one
    column of the joint table (not of the marginals), which lowers H(a, b) and raises MI wherever
    the images hold both levels (saturated infrared targets, sky). Reproduced here, because every
    published MATLAB MI carries it.
    """
    log = np.log if base == "e" else np.log2
    h_a = _entropy_from_counts(np.bincount(a.ravel(), minlength=256), log)
    h_b = _entropy_from_counts(np.bincount(b.ravel(), minlength=256), log)
    if base == "2":
        a, b = np.minimum(a, 254), np.minimum(b, 254)  # Hab's saturating uint8 + 1
    joint = np.bincount(a.ravel().astype(np.int64) * 256 + b.ravel(), minlength=256 * 256)
    return max(h_a + h_b - _entropy_from_counts(joint, log), 0.0)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xm = x - x.mean()
    ym = y - y.mean()
    den = np.sqrt((xm * xm).sum() * (ym * ym).sum())
    if den == 0:
        return float("nan")
    return float((xm * ym).sum() / den)


def scd(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """SCD = corr(F - VI, IR) + corr(F - IR, VI) (Aslantas & Bendes 2015).

    Pearson correlation over all pixels (CDDFuse ``SCD``; ``analysis_SCD.m`` ``corr2``; both are
    scale-free, so 0-255 vs 0-1 does not matter). A correlation with a constant image (e.g. when the
    fused image equals one source, F - IR = 0) is 0/0: both references return NaN there, and so
    does this function (no warning is raised).
    """
    f = fused.astype(np.float64)
    a = ir.astype(np.float64)
    b = vi.astype(np.float64)
    return _pearson(f - b, a) + _pearson(f - a, b)


# --------------------------------------------------------------------------------------------
# VIF (pixel-domain multiscale VIFp, Sheikh & Bovik)
# --------------------------------------------------------------------------------------------
def _gauss_1d(n: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian; the outer product equals MATLAB ``fspecial('gaussian', n, sigma)``.

    ``fspecial`` also zeroes taps below ``eps * max``; for the windows used here (17/3.4, 9/1.8,
    5/1.0, 3/0.6, 11/1.5) no 2-D tap is that small, so the separable form is exact.
    """
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``filter2(g g', x, 'valid')`` (= ``convolve2d(x, rot90(w, 2), 'valid')``) via two 1-D passes."""
    r = (len(g) - 1) // 2
    y = correlate1d(x, g, axis=0, mode="constant")
    y = correlate1d(y, g, axis=1, mode="constant")
    return y[r : x.shape[0] - r, r : x.shape[1] - r]


def vif_pair(ref: np.ndarray, dist: np.ndarray, nan_to_one: bool = True) -> float:
    """VIFp of ``dist`` against reference ``ref`` (``vifp_mscale.m`` / CDDFuse ``compare_viff``).

    Four scales; window N = 2^(5-s)+1 (17, 9, 5, 3), Gaussian sigma N/5; 'valid' filtering; for s > 1
    the images are first filtered with that scale's window and decimated ``[::2, ::2]``. Local
    statistics with sigma_n^2 = 2 and eps = 1e-10 clipping exactly as the reference: negative
    variances -> 0; where sigma1^2 < eps: g = 0, sv^2 = sigma2^2, sigma1^2 = 0; where sigma2^2 < eps:
    g = 0, sv^2 = 0; where g < 0: sv^2 = sigma2^2, g = 0; sv^2 <= eps -> eps.
    VIF = sum log10(1 + g^2 sigma1^2 / (sv^2 + sigma_n^2)) / sum log10(1 + sigma1^2 / sigma_n^2).
    Quirk: CDDFuse returns 1.0 when the ratio is NaN (0/0, a flat reference); MATLAB returns NaN
    (``nan_to_one=False``).
    """
    sigma_nsq = 2.0
    eps = 1e-10
    ref = ref.astype(np.float64)
    dist = dist.astype(np.float64)
    num = 0.0
    den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        g = _gauss_1d(n, n / 5.0)
        if scale > 1:
            ref = _filter_valid(ref, g)[::2, ::2]
            dist = _filter_valid(dist, g)[::2, ::2]
        if min(ref.shape) < n:  # tiny image: the reference would fail here; stop at this scale
            break
        mu1 = _filter_valid(ref, g)
        mu2 = _filter_valid(dist, g)
        mu1_sq = mu1 * mu1
        mu2_sq = mu2 * mu2
        mu1_mu2 = mu1 * mu2
        sigma1_sq = _filter_valid(ref * ref, g) - mu1_sq
        sigma2_sq = _filter_valid(dist * dist, g) - mu2_sq
        sigma12 = _filter_valid(ref * dist, g) - mu1_mu2

        sigma1_sq[sigma1_sq < 0] = 0
        sigma2_sq[sigma2_sq < 0] = 0

        gain = sigma12 / (sigma1_sq + eps)
        sv_sq = sigma2_sq - gain * sigma12

        low1 = sigma1_sq < eps
        gain[low1] = 0
        sv_sq[low1] = sigma2_sq[low1]
        sigma1_sq[low1] = 0

        low2 = sigma2_sq < eps
        gain[low2] = 0
        sv_sq[low2] = 0

        neg = gain < 0
        sv_sq[neg] = sigma2_sq[neg]
        gain[neg] = 0
        sv_sq[sv_sq <= eps] = eps

        num += float(np.sum(np.log10(1 + gain * gain * sigma1_sq / (sv_sq + sigma_nsq))))
        den += float(np.sum(np.log10(1 + sigma1_sq / sigma_nsq)))
    vifp = num / den if den != 0 else float("nan")
    if math.isnan(vifp) and nan_to_one:
        return 1.0
    return vifp


# --------------------------------------------------------------------------------------------
# Qabf (Xydeas & Petrovic)
# --------------------------------------------------------------------------------------------
# analysis_Qabf.m: L = 1, Tg = 0.9994, kg = -15, Dg = 0.5, Ta = 0.9879, ka = -22, Da = 0.8.
QABF_STRENGTH = (0.9994, -15.0, 0.5)  # Tg, kg, Dg
QABF_ORIENTATION = (0.9879, -22.0, 0.8)  # Ta, ka, Da
SOBEL_Y = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float64)  # h1 of the script
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)  # h3 of the script


def _conv2_same(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB ``conv2(img, kernel, 'same')`` (true convolution, zero padding) in float64.

    The sum runs over the kernel taps in MATLAB's column-major order, one rounded addition per tap
    (taps of 0 add an exact 0, multiplications by +-1, +-2 are exact). On integer-valued images
    every order gives the exact integer; on ``im2double`` images (v / 255) the order decides the
    last bit, and with it whether two unequal neighbourhoods with the same integer gradient give
    *exactly* equal magnitudes (the tie branch of Qabf). MATLAB does not document its accumulation
    order; this is the direct one.
    """
    h, w = img.shape
    p = np.pad(img, 1)
    out = np.zeros((h, w), dtype=np.float64)
    for col in range(3):
        for row in range(3):
            tap = kernel[row, col]
            # conv2 flips the kernel: tap (row, col) multiplies img(i + 1 - row, j + 1 - col)
            out = out + tap * p[2 - row : 2 - row + h, 2 - col : 2 - col + w]
    return out


def _qabf_grad(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sx = _conv2_same(img, SOBEL_X)
    sy = _conv2_same(img, SOBEL_Y)
    g = np.sqrt(sx * sx + sy * sy)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(sx == 0, math.pi / 2, np.arctan(sy / sx))
    return g, a


def _qabf_edge_preservation(
    g_src: np.ndarray, a_src: np.ndarray, g_f: np.ndarray, a_f: np.ndarray
) -> np.ndarray:
    tg, kg, dg = QABF_STRENGTH
    ta, ka, da = QABF_ORIENTATION
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(g_src > g_f, g_f / g_src, g_src / g_f)
    # Quirk of the MATLAB original, kept by CDDFuse: where the two gradient magnitudes are equal
    # the "relative strength" is set to gF itself instead of 1.
    rel = np.where(g_src == g_f, g_f, ratio)
    ang = 1.0 - np.abs(a_src - a_f) / (math.pi / 2)
    qg = tg / (1.0 + np.exp(kg * (rel - dg)))
    qa = ta / (1.0 + np.exp(ka * (ang - da)))
    return qg * qa


def qabf(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray, convention: str = "python") -> float:
    """Qabf (Xydeas-Petrovic edge preservation), CDDFuse ``Qabf`` / ``analysis_Qabf.m``.

    Sobel ``h3`` (x) and ``h1`` (y) with ``conv2(..., 'same')`` zero padding, g = sqrt(Sx^2 + Sy^2),
    alpha = arctan(Sy / Sx) (not atan2) and pi/2 where Sx == 0. Relative strength G = min/max of
    the source and fused magnitudes, but **G = gF where gA == gF** (quirk of the MATLAB original).
    Relative orientation A = 1 - |alphaA - alphaF| / (pi/2);
    Q = 0.9994/(1+e^{-15(G-0.5)}) * 0.9879/(1+e^{-22(A-0.8)}); Qabf = sum(QAF gA + QBF gB) / sum(gA + gB).

    Everything except the tie branch is scale-free, and the tie branch is where the conventions
    part (why ``max`` scores 0.71 in one and 0.35 in the other on MSRS):

    - ``python`` (CDDFuse) works on 0-255 values: a tie gives G = gF, and any non-zero integer
      Sobel magnitude is >= 1, so Q_g = 0.9994 / (1 + e^{-15 (gF - 0.5)}) >= 0.9988: a tie scores
      as a perfectly kept edge, which is the published definition (G = 1 for equal strengths).
    - ``matlab`` (``analysis_Reference.m`` passes ``im2double`` 0-1 images) computes the same
      in float64 on v / 255: a tie gives G = gF / 255, below 0.5 for any edge weaker than 127
      grey levels, so Q_g drops towards 0: **the script scores an edge the fused image copies
      exactly as lost**. Fused images that copy one source over whole regions (``max``, ``GTF``'s
      infrared-intensity regions, fused == a source) are penalised there and nowhere else. This
      is the script's behaviour and is reproduced, not corrected.
    - Which ties exist differs too: on 0-255 integers every equal magnitude is a tie; on 0-1
      doubles only the bit-identical ones are (an identical 3x3 neighbourhood always; an unequal
      one with the same integer gradient only when the rounding happens to agree). Computing ties
      on the integers, as this module did before, counted as ties pixels MATLAB does not (GTF
      output, which keeps the visible gradients on shifted intensities), and made the ``matlab``
      Qabf of such images too low; the float64 emulation of ``_conv2_same`` fixes that.

    NaN if both sources are flat.
    """
    scale = 255.0 if convention == "matlab" else 1.0
    g_a, a_a = _qabf_grad(ir.astype(np.float64) / scale)
    g_b, a_b = _qabf_grad(vi.astype(np.float64) / scale)
    g_f, a_f = _qabf_grad(fused.astype(np.float64) / scale)
    q_af = _qabf_edge_preservation(g_a, a_a, g_f, a_f)
    q_bf = _qabf_edge_preservation(g_b, a_b, g_f, a_f)
    deno = float(np.sum(g_a + g_b))
    if deno == 0:
        return float("nan")
    return float(np.sum(q_af * g_a + q_bf * g_b) / deno)


# --------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------
def ssim_skimage(x: np.ndarray, y: np.ndarray, data_range: float = 2.0) -> float:
    """SSIM as ``skimage.metrics.structural_similarity(x, y)`` computes it in CDDFuse.

    CDDFuse passes float32 images (``cv2.imread(...).astype('float32')`` -> gray -> ``np.round``) and
    no ``data_range``; scikit-image 0.19 then takes the float dtype's range (-1, 1), i.e.
    **data_range = 2** (C1 = 4e-4, C2 = 3.6e-3, almost no stabilisation; newer scikit-image refuses
    float input without ``data_range``). It also keeps float32 for the arithmetic
    (``_supported_float_type``), which is reproduced here because the variances of flat regions are
    of the order of C2, so float32 round-off is visible in the 4th decimal. Defaults: 7x7 uniform
    window (``scipy.ndimage.uniform_filter``, reflect padding), sample covariance (49/48),
    K1 = 0.01, K2 = 0.03, mean of the SSIM map with a 3-pixel border cropped.
    """
    win = 7
    im1 = x.astype(np.float32)
    im2 = y.astype(np.float32)
    np_ = win * win
    cov_norm = np_ / (np_ - 1.0)
    ux = uniform_filter(im1, size=win)
    uy = uniform_filter(im2, size=win)
    uxx = uniform_filter(im1 * im1, size=win)
    uyy = uniform_filter(im2 * im2, size=win)
    uxy = uniform_filter(im1 * im2, size=win)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    a1 = 2 * ux * uy + c1
    a2 = 2 * vxy + c2
    b1 = ux**2 + uy**2 + c1
    b2 = vx + vy + c2
    s = (a1 * a2) / (b1 * b2)
    pad = (win - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean(dtype=np.float64))


def ssim_matlab(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM as MATLAB's built-in ``ssim`` computes it on ``im2double`` images (DynamicRange 1).

    Equivalent on 0-255 values with L = 255: Gaussian window sigma 1.5, 11 taps
    (``imgaussfilt`` ``FilterSize = 2*ceil(3*sigma)+1``), 'replicate' padding, same-size SSIM map,
    population (Gaussian-weighted) variances, C1 = (0.01 L)^2, C2 = (0.03 L)^2, mean over the whole
    map. (VIFB's ``metricsSsim.m`` uses the same window with 'valid' filtering instead; it differs
    only through the border.)
    """
    g = _gauss_1d(11, 1.5)

    def blur(im: np.ndarray) -> np.ndarray:
        return correlate1d(correlate1d(im, g, axis=0, mode="nearest"), g, axis=1, mode="nearest")

    a = x.astype(np.float64)
    b = y.astype(np.float64)
    c1 = (0.01 * 255.0) ** 2
    c2 = (0.03 * 255.0) ** 2
    mux = blur(a)
    muy = blur(b)
    mux2 = mux * mux
    muy2 = muy * muy
    muxy = mux * muy
    sx2 = blur(a * a) - mux2
    sy2 = blur(b * b) - muy2
    sxy = blur(a * b) - muxy
    m = ((2 * muxy + c1) * (2 * sxy + c2)) / ((mux2 + muy2 + c1) * (sx2 + sy2 + c2))
    return float(m.mean())


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def evaluate(
    fused: np.ndarray, ir: np.ndarray, vi: np.ndarray, convention: str = "python"
) -> dict[str, float]:
    """All nine fusion metrics of ``fused`` against sources ``ir`` and ``vi``.

    Inputs are ``uint8`` ``(H, W)`` grayscale (luma) arrays of one size. Returns a dict with the keys
    of :data:`METRIC_NAMES` in that order. ``convention`` is ``"python"`` (CDDFuse evaluator: MI in
    nats, VIF and SSIM summed over the two sources, SSIM with data_range 2) or ``"matlab"``
    (Linfeng-Tang/VIFB scripts: MI in bits, AG over (H-1)(W-1), VIF summed, SSIM averaged, Qabf on
    0-1 images). Undefined values (SCD when a difference image is constant, Qabf when both sources
    are flat, VIF in the matlab convention for a flat source) are NaN, as in the references.
    """
    _check_convention(convention)
    fused = _check_image("fused", fused)
    ir = _check_image("ir", ir)
    vi = _check_image("vi", vi)
    if not (fused.shape == ir.shape == vi.shape):
        raise ValueError(
            f"fused, ir and vi must have the same size, got {fused.shape}, {ir.shape}, {vi.shape}"
        )
    matlab = convention == "matlab"
    mi_base = "2" if matlab else "e"
    if matlab:
        ssim = 0.5 * (ssim_matlab(fused, ir) + ssim_matlab(fused, vi))
    else:
        ssim = ssim_skimage(fused, ir) + ssim_skimage(fused, vi)
    values = {
        "EN": entropy(fused),
        "SD": standard_deviation(fused),
        "SF": spatial_frequency(fused),
        "AG": average_gradient(fused, convention),
        "MI": mutual_information(fused, ir, mi_base) + mutual_information(fused, vi, mi_base),
        "SCD": scd(fused, ir, vi),
        "VIF": vif_pair(ir, fused, nan_to_one=not matlab) + vif_pair(vi, fused, nan_to_one=not matlab),
        "Qabf": qabf(fused, ir, vi, convention),
        "SSIM": ssim,
    }
    return {name: float(values[name]) for name in METRIC_NAMES}
