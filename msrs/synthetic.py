"""Built-in synthetic MSRS-like road scenes: the embedded default data.

MSRS cannot be downloaded everywhere, so the pipeline generates small scenes in exactly the
MSRS layout (``train/`` and ``test/``, each with ``ir/``, ``vi/``, ``Segmentation_labels/``,
names ``00001D.png`` / ``00002N.png``) with the nine MSRS classes. Every image is drawn from its
own generator seeded by ``(seed, index)``, so a set is reproducible byte for byte and a larger
set starts with the images of a smaller one.

The rules that make fusion matter (the two modalities carry complementary information, as real
infrared/visible pairs do):

1. **Day and night.** ``night_fraction`` of the scenes are night scenes (name ends in N).
   At night the visible image is dark (``NIGHT_VISIBLE_GAIN`` of the day radiance) and noisier;
   the infrared image does not change with illumination.
2. **Warm objects** (person, car, bike) are bright in infrared day and night
   (``WARM_IR`` above the scene). In the visible image they have ordinary, moderate contrast by
   day and almost none at night (dark clothing and bodies are not lit).
3. **Colour- and texture-only things** (curve/curb, car_stop, guardrail, color_cone, bump) are
   painted or reflective: strong colour and stripes in the visible image, day and night
   (retro-reflective paint keeps ``REFLECTIVE_NIGHT_GAIN`` of its brightness at night), and
   within a few grey levels of their surroundings in infrared (same temperature as the road).
4. **Sensor noise in both**: Gaussian noise in both modalities (stronger in the night visible
   image), a slight blur in infrared (thermal cameras resolve less), and background texture
   (clouds, windows, asphalt grain) in the visible image only.

5. **Sizes.** Objects shrink with distance to the horizon (perspective). The small classes
   (bike, car_stop, color_cone, bump) are drawn larger than in real MSRS (about 1.2, 0.6, 0.8 and
   1.7% of the pixels here) so that the minutes-long default training learns every class; their
   real MSRS shares are a few tenths of a percent.

Consequence: an infrared-only segmenter cannot see the painted classes, a visible-only one
misses people and bikes at night, and a good fusion of the two sees both.
:func:`modality_contrast` measures rule 2 and 3 on generated data (used by the tests).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from msrs.layout import IR_DIR, LABEL_DIR, VI_DIR
from runtime.files import write_bytes_atomic

NIGHT_VISIBLE_GAIN = 0.1
REFLECTIVE_NIGHT_GAIN = 0.7
WARM_IR = 0.45
IR_NOISE, VI_NOISE_DAY, VI_NOISE_NIGHT = 0.02, 0.015, 0.03

CAR, PERSON, BIKE, CURVE, CAR_STOP, GUARDRAIL, COLOR_CONE, BUMP = range(1, 9)
_OBJECTS = (CAR, PERSON, BIKE, CAR_STOP, GUARDRAIL, COLOR_CONE, BUMP)
# chance that a scene holds each object (besides the one it is forced to show); the small
# classes more often, so that minutes of training see enough of them
PRESENCE = {CAR: 0.6, PERSON: 0.6, BIKE: 0.8, CAR_STOP: 0.8, GUARDRAIL: 0.5, COLOR_CONE: 0.7, BUMP: 0.6}


class _Canvas:
    """Three layers painted together: visible radiance (RGB, 0..1), infrared, label."""

    def __init__(self, height: int, width: int):
        self.h, self.w = height, width
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self.vi = np.zeros((height, width, 3), np.float32)
        self.ir = np.zeros((height, width), np.float32)
        self.label = np.zeros((height, width), np.uint8)
        # 1 where the visible radiance is retro-reflective (keeps brightness at night).
        self.reflective = np.zeros((height, width), np.float32)

    def paint(self, mask, colour=None, ir=None, label=None, reflective=False):
        if colour is not None:
            self.vi[mask] = colour
        if ir is not None:
            self.ir[mask] = ir
        if label is not None:
            self.label[mask] = label
        self.reflective[mask] = 1.0 if reflective else 0.0

    def ellipse(self, cy, cx, ry, rx):
        return ((self.yy - cy) / ry) ** 2 + ((self.xx - cx) / rx) ** 2 <= 1.0

    def box(self, y0, x0, y1, x1):
        return (self.yy >= y0) & (self.yy < y1) & (self.xx >= x0) & (self.xx < x1)


def _background(c: _Canvas, rng: np.random.Generator, horizon: float) -> None:
    h, w = c.h, c.w
    sky = c.yy < horizon
    gradient = (1.0 - c.yy / max(horizon, 1.0))[..., None]
    c.vi[:] = np.where(sky[..., None], 0.55 + 0.3 * gradient * np.array([0.6, 0.8, 1.0]), 0.0)
    c.ir[:] = np.where(sky, 0.12, 0.0)
    # buildings: grey blocks with a window grid in visible, lukewarm and flat in infrared
    for _ in range(rng.integers(2, 5)):
        bw = rng.uniform(0.12, 0.3) * w
        x0 = rng.uniform(-0.1, 0.95) * w
        top = horizon - rng.uniform(0.15, 0.4) * h
        block = c.box(top, x0, horizon, x0 + bw)
        tone = rng.uniform(0.3, 0.6)
        windows = ((c.yy.astype(int) // 4) % 2 == 0) & ((c.xx.astype(int) // 3) % 2 == 0)
        colour = tone * np.array([1.0, 0.95, 0.9]) * np.where(windows, 0.7, 1.0)[..., None]
        c.vi[block] = colour[block]
        c.ir[block] = rng.uniform(0.25, 0.35)
    # road: asphalt grain in visible, a uniform slightly warm surface in infrared
    road = c.yy >= horizon
    grain = rng.normal(0.0, 0.04, (h, w)).astype(np.float32)
    c.vi[road] = (0.33 + grain[road])[:, None] * np.array([1.0, 1.0, 1.02])
    c.ir[road] = 0.32


def _curve(c: _Canvas, rng: np.random.Generator, horizon: float) -> None:
    """Curbs on both road edges: white/red painted stripes, same temperature as the road."""
    h, w = c.h, c.w
    for side in (-1, 1):
        if rng.random() < 0.25 and side == 1:
            continue
        vanish = w / 2 + rng.uniform(-0.1, 0.1) * w
        bottom = w / 2 + side * rng.uniform(0.35, 0.6) * w
        t = np.clip((c.yy - horizon) / max(h - horizon, 1.0), 0.0, 1.0)
        centre = vanish + (bottom - vanish) * t
        width = 1.0 + 0.05 * w * t
        mask = (c.yy >= horizon + 2) & (np.abs(c.xx - centre) <= width)
        stripes = ((c.yy.astype(int) // 3) % 2 == 0)[..., None]
        colour = np.where(stripes, np.array([0.95, 0.95, 0.95]), np.array([0.85, 0.2, 0.2]))
        c.paint(mask, colour=colour[mask], ir=0.32 + 0.01, label=CURVE, reflective=True)


def _place(rng: np.random.Generator, c: _Canvas, horizon: float) -> tuple[float, float, float]:
    """A ground point below the horizon and a perspective scale (bigger when nearer)."""
    y = rng.uniform(horizon + 0.1 * (c.h - horizon), c.h * 0.98)
    scale = 0.35 + 0.9 * (y - horizon) / max(c.h - horizon, 1.0)
    x = rng.uniform(0.05, 0.95) * c.w
    return y, x, scale * c.h / 64.0


def _draw(c: _Canvas, rng: np.random.Generator, kind: int, horizon: float) -> None:
    y, x, s = _place(rng, c, horizon)
    warm = c.ir[int(min(y, c.h - 1)), int(min(max(x, 0), c.w - 1))] + WARM_IR
    if kind == CAR:
        bw, bh = 22 * s, 9 * s
        body = c.box(y - bh, x - bw / 2, y - 2 * s, x + bw / 2)
        roof = c.box(y - bh - 5 * s, x - bw / 3, y - bh + 1, x + bw / 3)
        colour = rng.uniform(0.15, 0.9, 3)
        c.paint(body | roof, colour=colour, ir=warm - 0.15, label=CAR)
        for wx in (x - bw / 3, x + bw / 3):  # hot tyres and engine
            c.paint(
                c.ellipse(y - 2 * s, wx, 2.5 * s, 2.5 * s),
                colour=(0.05, 0.05, 0.05),
                ir=warm + 0.05,
                label=CAR,
            )
    elif kind == PERSON:
        body = c.ellipse(y - 8 * s, x, 7 * s, 2.6 * s)
        head = c.ellipse(y - 17 * s, x, 2.2 * s, 2.0 * s)
        legs = c.box(y - 3 * s, x - 2 * s, y, x + 2 * s)
        colour = rng.uniform(0.1, 0.35, 3)  # dark clothing: moderate contrast by day
        c.paint(body | head | legs, colour=colour, ir=min(warm + 0.1, 0.98), label=PERSON)
    elif kind == BIKE:
        r = 4.5 * s
        wheels = np.zeros_like(c.label, dtype=bool)
        for wx in (x - 6 * s, x + 6 * s):
            d = np.hypot(c.yy - (y - r), c.xx - wx)
            wheels |= (d <= r) & (d >= r - 2.0 * max(s, 0.8))
        frame = c.box(y - r - 1.5 * s, x - 6 * s, y - r + 1.5 * s, x + 6 * s)
        post = c.box(y - 2.6 * r, x - 1.5 * s, y - r, x + 1.5 * s)
        colour = rng.uniform(0.05, 0.3, 3)
        c.paint(wheels | frame | post, colour=colour, ir=warm - 0.05, label=BIKE)
    elif kind == CAR_STOP:
        block = c.box(y - 4 * s, x - 9 * s, y, x + 9 * s)
        c.paint(
            block,
            colour=(0.25, 0.55, 0.95),
            ir=c.ir[block].mean() + 0.01 if block.any() else 0.33,
            label=CAR_STOP,
            reflective=True,
        )
    elif kind == GUARDRAIL:
        top = y - 6 * s
        rail = c.box(top, 0, top + 2.5 * s, c.w) & (c.yy >= horizon)
        posts = c.box(top, 0, y, c.w) & ((c.xx.astype(int) // max(int(5 * s), 2)) % 3 == 0)
        mask = rail | (posts & (c.yy >= horizon))
        stripes = ((c.xx.astype(int) // 2) % 2 == 0)[..., None]
        colour = np.where(stripes, np.array([0.85, 0.87, 0.9]), np.array([0.55, 0.57, 0.6]))
        c.paint(mask, colour=colour[mask], ir=0.31, label=GUARDRAIL, reflective=True)
    elif kind == COLOR_CONE:
        height = 13 * s
        t = (y - c.yy) / max(height, 1.0)
        mask = (t >= 0) & (t <= 1) & (np.abs(c.xx - x) <= (1 - t) * 5 * s + 1.0)
        band = (t > 0.4) & (t < 0.6)
        colour = np.where(band[..., None], np.array([0.95, 0.95, 0.95]), np.array([1.0, 0.42, 0.05]))
        c.paint(mask, colour=colour[mask], ir=0.33, label=COLOR_CONE, reflective=True)
    elif kind == BUMP:
        band = c.box(y - 4 * s, x - 25 * s, y, x + 25 * s) & (c.yy >= horizon)
        stripes = ((c.xx.astype(int) // 3) % 2 == 0)[..., None]
        colour = np.where(stripes, np.array([0.95, 0.85, 0.1]), np.array([0.08, 0.08, 0.08]))
        c.paint(band, colour=colour[band], ir=0.325, label=BUMP, reflective=True)


def _box_blur(image: np.ndarray) -> np.ndarray:
    padded = np.pad(image, 1, mode="edge")
    h, w = image.shape
    return sum(padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9.0


def generate_scene(
    seed: int,
    index: int,
    height: int = 96,
    width: int = 128,
    night: bool | None = None,
    night_fraction: float = 0.5,
    force_class: int | None = None,
):
    """One scene: (ir uint8 HxW, vi uint8 HxWx3, label uint8 HxW, is_night)."""
    rng = np.random.default_rng([seed, index])
    if night is None:
        night = bool(rng.random() < night_fraction)
    c = _Canvas(height, width)
    horizon = rng.uniform(0.35, 0.5) * height
    _background(c, rng, horizon)
    _curve(c, rng, horizon)
    kinds = [k for k in _OBJECTS if rng.random() < PRESENCE[k]]
    if force_class is not None and force_class in _OBJECTS:
        kinds.append(force_class)
    kinds += [PERSON] * int(rng.integers(0, 2))
    draws = [(kind, rng.random()) for kind in kinds]
    for kind, _ in sorted(draws, key=lambda item: item[1]):
        _draw(c, rng, kind, horizon)

    vi = c.vi
    if night:
        gain = NIGHT_VISIBLE_GAIN + (REFLECTIVE_NIGHT_GAIN - NIGHT_VISIBLE_GAIN) * c.reflective
        vi = vi * gain[..., None]
    vi = vi + rng.normal(0.0, VI_NOISE_NIGHT if night else VI_NOISE_DAY, vi.shape)
    ir = _box_blur(c.ir) + rng.normal(0.0, IR_NOISE, c.ir.shape)
    to_u8 = lambda a: np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)  # noqa: E731
    return to_u8(ir), to_u8(vi), c.label, night


# every generated PNG says what it is in a tEXt chunk, so a set is known as synthetic by its
# files, wherever it was written from (run_all, make_synthetic.py, a copy)
SOFTWARE = "fusionseg-bench synthetic scenes (msrs/synthetic.py)"


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", SOFTWARE)
    Image.fromarray(array).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def is_synthetic(root: str | Path) -> bool:
    """True when the data root's images were made by :func:`write_synthetic` (the ``Software``
    text of its first visible image; any layout)."""
    from msrs.layout import list_split, root_splits

    try:
        pair = list_split(root, root_splits(root)[0], labels=False)[0]
        with Image.open(pair.vi) as image:
            return image.info.get("Software") == SOFTWARE
    except (ValueError, IndexError, OSError):
        return False


def write_synthetic(
    out: str | Path,
    train: int = 200,
    test: int = 60,
    height: int = 96,
    width: int = 128,
    seed: int = 0,
    night_fraction: float = 0.5,
) -> Path:
    """Write a synthetic set in the MSRS layout under ``out``; returns ``out``.

    Train names are 00001.. and test names continue after them, as in MSRS where the two splits
    never share a name. Scene i forces object class ``i mod 7`` so that every class appears in
    both splits whenever each split has at least 7 scenes.
    """
    if train < 1 or test < 1:
        raise ValueError("synthetic set needs at least one train and one test scene")
    out = Path(out)
    index = 0
    for split, count in (("train", train), ("test", test)):
        for _ in range(count):
            index += 1
            ir, vi, label, night = generate_scene(
                seed,
                index,
                height,
                width,
                night_fraction=night_fraction,
                force_class=_OBJECTS[index % len(_OBJECTS)],
            )
            name = f"{index:05d}{'N' if night else 'D'}.png"
            for sub, array in ((IR_DIR, ir), (VI_DIR, vi), (LABEL_DIR, label)):
                write_bytes_atomic(out / split / sub / name, _png(array))
    return out


def modality_contrast(image: np.ndarray, label: np.ndarray, class_id: int) -> float:
    """Mean absolute luminance difference (0..255) between a class and the pixels in a band of
    6 pixels around it; NaN when the class is absent. Used to measure the rules above."""
    luminance = image.astype(np.float32)
    if luminance.ndim == 3:
        luminance = luminance @ np.array([0.299, 0.587, 0.114], np.float32)
    mask = label == class_id
    if not mask.any():
        return float("nan")
    grown = mask.copy()
    for _ in range(6):
        grown[1:] |= grown[:-1].copy()
        grown[:-1] |= grown[1:].copy()
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
    ring = grown & ~mask
    if not ring.any():
        return float("nan")
    return float(abs(luminance[mask].mean() - luminance[ring].mean()))
