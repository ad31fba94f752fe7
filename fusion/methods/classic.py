"""Classic (training-free) fusion rules, all on luminance (see :class:`LuminanceMethod`).

Every ``fuse_*`` function takes float32 (H, W) infrared and visible luminance in [0, 1] and
returns the fused luminance; every ``build_*`` returns a :class:`LuminanceMethod` with its
parameters recorded (they enter the method's fingerprint). Only numpy, scipy and PyWavelets
are used (no OpenCV), so results are the same on every machine that installs the project.

Methods and their references:

* ``average``  -- pixel mean.
* ``max``      -- pixel-wise maximum ("choose max").
* ``laplacian`` -- Burt & Adelson, "The Laplacian pyramid as a compact image code", IEEE Trans.
  Commun. 31(4), 1983; fusion rule of Burt & Kolczynski, ICCV 1993 (details: larger absolute
  value; base: mean).
* ``dwt``      -- Li, Manjunath & Mitra, "Multisensor image fusion using the wavelet transform",
  Graphical Models and Image Processing 57(3), 1995 (details: larger absolute value;
  approximation: mean).
* ``gff``      -- Li, Kang & Hu, "Image fusion with guided filtering", IEEE TIP 22(7), 2013.
* ``gtf``      -- Ma, Chen, Li & Huang, "Infrared and visible image fusion via gradient transfer
  and total variation minimization", Information Fusion 31, 2016.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from fusion.methods import register_method
from fusion.methods.base import LuminanceMethod

# ----------------------------------------------------------------------------- simple rules


def fuse_average(ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
    """Pixel mean of the two luminances."""
    return (ir + vi) * np.float32(0.5)


def fuse_max(ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
    """Pixel-wise maximum ("choose max")."""
    return np.maximum(ir, vi)


@register_method("average", display="Average")
def build_average() -> LuminanceMethod:
    """Average fusion: F = (IR + Y_vis) / 2. No parameters."""
    return LuminanceMethod("average", fuse_average, {})


@register_method("max", display="Max")
def build_max() -> LuminanceMethod:
    """Choose-max fusion: F = max(IR, Y_vis) per pixel. No parameters."""
    return LuminanceMethod("max", fuse_max, {})


# ----------------------------------------------------------------------------- Laplacian pyramid

_BURT = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # the 5-tap generating kernel (a = 0.375)


def _blur(image: np.ndarray, gain: float = 1.0) -> np.ndarray:
    kernel = _BURT * gain
    out = ndimage.convolve1d(image, kernel, axis=0, mode="reflect")
    return ndimage.convolve1d(out, kernel, axis=1, mode="reflect")


def _reduce(image: np.ndarray) -> np.ndarray:
    return _blur(image)[::2, ::2]


def _expand(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    up = np.zeros(((shape[0] + 1) // 2 * 2, (shape[1] + 1) // 2 * 2), np.float64)
    up[::2, ::2] = image
    return _blur(up, 2.0)[: shape[0], : shape[1]]


def laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """``levels`` detail bands (finest first) followed by the low-pass residual. The number of
    levels is capped so that the coarsest band keeps at least 2 pixels per side."""
    current = np.asarray(image, np.float64)
    bands = []
    for _ in range(levels):
        if min(current.shape) < 4:
            break
        low = _reduce(current)
        bands.append(current - _expand(low, current.shape))
        current = low
    bands.append(current)
    return bands


def collapse_pyramid(bands: list[np.ndarray]) -> np.ndarray:
    current = bands[-1]
    for detail in reversed(bands[:-1]):
        current = detail + _expand(current, detail.shape)
    return current


def _max_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(np.abs(a) >= np.abs(b), a, b)


def fuse_laplacian(ir: np.ndarray, vi: np.ndarray, levels: int = 4) -> np.ndarray:
    """Laplacian-pyramid fusion: detail coefficients by larger absolute value, the low-pass
    residual averaged, then the pyramid collapsed."""
    a, b = laplacian_pyramid(ir, levels), laplacian_pyramid(vi, levels)
    fused = [_max_abs(x, y) for x, y in zip(a[:-1], b[:-1], strict=True)]
    fused.append((a[-1] + b[-1]) / 2.0)
    return collapse_pyramid(fused).astype(np.float32)


@register_method("laplacian", display="Laplacian")
def build_laplacian(levels: int = 4) -> LuminanceMethod:
    """Laplacian pyramid fusion (Burt & Adelson 1983; rule of Burt & Kolczynski 1993).

    ``levels``: number of detail bands (default 4; capped by the image size). Kernel: the
    5-tap Burt kernel [1 4 6 4 1]/16, reflected borders."""
    return LuminanceMethod("laplacian", fuse_laplacian, {"levels": int(levels)})


# ----------------------------------------------------------------------------- wavelets


def fuse_dwt(ir: np.ndarray, vi: np.ndarray, wavelet: str = "db2", levels: int = 3) -> np.ndarray:
    """Discrete-wavelet fusion: detail sub-bands by larger absolute value, the approximation
    averaged, inverse transform (symmetric extension), cropped to the input size."""
    import pywt  # only this method needs it

    level = max(1, min(int(levels), pywt.dwt_max_level(min(ir.shape), pywt.Wavelet(wavelet).dec_len)))
    a = pywt.wavedec2(ir.astype(np.float64), wavelet, mode="symmetric", level=level)
    b = pywt.wavedec2(vi.astype(np.float64), wavelet, mode="symmetric", level=level)
    fused = [(a[0] + b[0]) / 2.0]
    for details_a, details_b in zip(a[1:], b[1:], strict=True):
        fused.append(tuple(_max_abs(x, y) for x, y in zip(details_a, details_b, strict=True)))
    out = pywt.waverec2(fused, wavelet, mode="symmetric")
    return out[: ir.shape[0], : ir.shape[1]].astype(np.float32)


@register_method("dwt", display="DWT")
def build_dwt(wavelet: str = "db2", levels: int = 3) -> LuminanceMethod:
    """DWT fusion (Li, Manjunath & Mitra 1995) with PyWavelets.

    ``wavelet``: PyWavelets name (default ``db2``); ``levels``: decomposition levels (default 3,
    capped by the image size)."""
    return LuminanceMethod("dwt", fuse_dwt, {"wavelet": str(wavelet), "levels": int(levels)})


# ----------------------------------------------------------------------------- GFF


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1) x (2r+1) window, reflected borders."""
    return ndimage.uniform_filter(image, size=2 * radius + 1, mode="reflect")


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He, Sun & Tang's guided filter (ECCV 2010 / TPAMI 2013), grey guide, box-filter form."""
    guide = guide.astype(np.float64)
    source = source.astype(np.float64)
    mean_i, mean_p = _box(guide, radius), _box(source, radius)
    cov_ip = _box(guide * source, radius) - mean_i * mean_p
    var_i = _box(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return _box(a, radius) * guide + _box(b, radius)


def _normalise(weights: list[np.ndarray]) -> list[np.ndarray]:
    # the guided filter can overshoot slightly below 0; clipping keeps the blend convex
    weights = [np.clip(w, 0.0, None) + 1e-12 for w in weights]
    total = sum(weights)
    return [w / total for w in weights]


def fuse_gff(
    ir: np.ndarray,
    vi: np.ndarray,
    base_size: int = 31,
    gauss_radius: int = 5,
    gauss_sigma: float = 5.0,
    r1: int = 45,
    eps1: float = 0.3,
    r2: int = 7,
    eps2: float = 1e-6,
) -> np.ndarray:
    """Guided-filtering fusion (GFF, Li, Kang & Hu 2013).

    1. two-scale decomposition: base = mean filter (``base_size`` x ``base_size``), detail =
       image - base;
    2. saliency S = Gaussian(|3x3 Laplacian(image)|), Gaussian of radius ``gauss_radius`` and
       sigma ``gauss_sigma``; binary weight maps P_n = [S_n is the largest] (ties: the first);
    3. weight maps refined by the guided filter with the source image as guide:
       base weights with (``r1``, ``eps1``), detail weights with (``r2``, ``eps2``), then
       normalised to sum to one per pixel;
    4. fused = sum W_base * base + sum W_detail * detail.
    """
    sources = [ir.astype(np.float64), vi.astype(np.float64)]
    bases = [ndimage.uniform_filter(s, size=base_size, mode="nearest") for s in sources]
    details = [s - b for s, b in zip(sources, bases, strict=True)]
    laplace = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    saliency = [
        ndimage.gaussian_filter(
            np.abs(ndimage.convolve(s, laplace, mode="nearest")),
            sigma=gauss_sigma,
            truncate=gauss_radius / gauss_sigma,
            mode="nearest",
        )
        for s in sources
    ]
    first = saliency[0] >= saliency[1]
    masks = [first.astype(np.float64), (~first).astype(np.float64)]
    w_base = _normalise([guided_filter(s, p, r1, eps1) for s, p in zip(sources, masks, strict=True)])
    w_detail = _normalise([guided_filter(s, p, r2, eps2) for s, p in zip(sources, masks, strict=True)])
    fused = sum(w * b for w, b in zip(w_base, bases, strict=True))
    fused = fused + sum(w * d for w, d in zip(w_detail, details, strict=True))
    return fused.astype(np.float32)


@register_method("gff", display="GFF")
def build_gff(r1: int = 45, eps1: float = 0.3, r2: int = 7, eps2: float = 1e-6) -> LuminanceMethod:
    """GFF (Li, Kang & Hu, IEEE TIP 2013) with the paper's parameters: 31x31 mean filter for the
    base layer, 11x11 Gaussian (sigma 5) on |Laplacian| for saliency, guided filter r1=45,
    eps1=0.3 (base weights) and r2=7, eps2=1e-6 (detail weights), intensities in [0, 1]."""
    return LuminanceMethod(
        "gff", fuse_gff, {"r1": int(r1), "eps1": float(eps1), "r2": int(r2), "eps2": float(eps2)}
    )


# ----------------------------------------------------------------------------- GTF


def _grad(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward differences, zero at the last row / column (Neumann boundary)."""
    gx = np.zeros_like(y)
    gy = np.zeros_like(y)
    gx[:, :-1] = y[:, 1:] - y[:, :-1]
    gy[:-1, :] = y[1:, :] - y[:-1, :]
    return gx, gy


def _div(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Discrete divergence, the negative adjoint of :func:`_grad`."""
    div = np.zeros_like(px)
    div[:, 0] = px[:, 0]
    div[:, 1:-1] = px[:, 1:-1] - px[:, :-2]
    div[:, -1] = -px[:, -2]
    div[0, :] += py[0, :]
    div[1:-1, :] += py[1:-1, :] - py[:-2, :]
    div[-1, :] += -py[-2, :]
    return div


def total_variation(y: np.ndarray) -> float:
    """Isotropic TV: sum over pixels of |grad y|_2 (forward differences)."""
    gx, gy = _grad(np.asarray(y, np.float64))
    return float(np.sqrt(gx * gx + gy * gy).sum())


def gtf_objective(x: np.ndarray, ir: np.ndarray, vi: np.ndarray, lam: float) -> float:
    """The GTF energy |x - ir|_1 + lam * sum |grad x - grad vi|_2 (isotropic)."""
    x, ir, vi = (np.asarray(a, np.float64) for a in (x, ir, vi))
    return float(np.abs(x - ir).sum()) + lam * total_variation(x - vi)


def tv_l1(
    f: np.ndarray,
    lam: float,
    tol: float = 1e-5,
    max_iter: int = 1000,
    check_every: int = 10,
    balance: float | None = None,
) -> tuple[np.ndarray, int]:
    """Solve min_y |y - f|_1 + lam * TV(y) (isotropic TV) with the Chambolle-Pock primal-dual
    algorithm (J. Math. Imaging Vis. 40, 2011, algorithm 1, theta = 1).

    Steps tau = 1 / (c sqrt(8)), sigma = c / sqrt(8) (tau sigma |grad|^2 <= 1, the convergence
    condition); c = ``balance``, by default 10 * lam, because the dual variable lives in a ball
    of radius lam while y is of the order of the [0, 1] intensities (c = 1 converges about ten
    times slower). Starts from y = f. Stops when the mean absolute change of y per iteration,
    measured over ``check_every`` iterations, falls below ``tol``, or after ``max_iter``
    iterations. Returns (y as float64, iterations run)."""
    f64 = np.asarray(f, np.float64)
    if lam <= 0 or min(f64.shape) < 2:
        return f64.copy(), 0
    c = 10.0 * lam if balance is None else float(balance)
    tau = np.float32(1.0 / (c * np.sqrt(8.0)))
    sigma = np.float32(c / np.sqrt(8.0))
    lam32 = np.float32(lam)
    f = f64.astype(np.float32)
    y = f.copy()
    y_bar = y.copy()
    px = np.zeros_like(f)
    py = np.zeros_like(f)
    reference = y.copy()
    iteration = 0
    for iteration in range(1, max_iter + 1):
        gx, gy = _grad(y_bar)
        px += sigma * gx
        py += sigma * gy
        # prox of the dual of lam*|.|_{2,1}: project each (px, py) onto the ball of radius lam
        scale = np.maximum(np.float32(1.0), np.sqrt(px * px + py * py) / lam32)
        px /= scale
        py /= scale
        y_old = y
        z = y + tau * _div(px, py) - f
        # prox of tau*|y - f|_1: soft threshold around f
        y = f + np.sign(z) * np.maximum(np.abs(z) - tau, np.float32(0.0))
        y_bar = 2.0 * y - y_old
        if iteration % check_every == 0:
            change = float(np.abs(y - reference).mean()) / check_every
            reference = y.copy()
            if change < tol:
                break
    return y.astype(np.float64), iteration


def fuse_gtf(
    ir: np.ndarray, vi: np.ndarray, lam: float = 4.0, tol: float = 3e-6, max_iter: int = 2000
) -> np.ndarray:
    """Gradient transfer fusion (GTF, Ma et al. 2016).

    Minimises E(x) = |x - ir|_1 + lam * |grad x - grad vi|_1 (isotropic gradient magnitude,
    p = 1 in the paper's 1/p |x - u|_p^p data term). With y = x - vi this is the TV-L1 problem
    min_y |y - (ir - vi)|_1 + lam * TV(y), solved by :func:`tv_l1`; the result is
    x = y + vi, clipped to [0, 1]. ``lam`` weights the gradient (TV) term, as in the paper's
    equation (lam = 4 is the paper's setting under this parameterisation: larger lam -> more of
    the visible gradients, smaller -> closer to the infrared image). lam = 0 returns the
    infrared image exactly. TV-L1 is contrast invariant, so the [0, 1] scale does not change
    the meaning of lam.
    """
    if lam <= 0:
        return ir.copy()
    y, _ = tv_l1(ir.astype(np.float64) - vi.astype(np.float64), lam, tol=tol, max_iter=max_iter)
    return np.clip(y + vi, 0.0, 1.0).astype(np.float32)


@register_method("gtf", display="GTF")
def build_gtf(lam: float = 4.0, tol: float = 3e-6, max_iter: int = 2000) -> LuminanceMethod:
    """GTF (Ma, Chen, Li & Huang, Information Fusion 31, 2016): the infrared intensities with the
    visible gradients, min |x - ir|_1 + lam |grad x - grad vi|_1, lam = 4 (the paper's value).
    ``tol``/``max_iter``: stopping rule of the Chambolle-Pock TV-L1 solver (the default 3e-6,
    mean change per iteration in [0, 1] units, stops a 500x350 image after about 600 iterations,
    within 0.06 grey levels on average of the fully converged result)."""
    return LuminanceMethod("gtf", fuse_gtf, {"lam": float(lam), "tol": float(tol), "max_iter": int(max_iter)})
