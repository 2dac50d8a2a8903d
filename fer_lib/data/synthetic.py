"""The built-in default dataset: procedurally drawn SYNTHETIC faces for machines with no dataset.

Each face gets a random identity (face shape, skin, hair, eye, brow and mouth geometry), pose (roll,
yaw, scale, shift; cropped close, as FER2013's faces), lighting, cluttered background and sensor noise. The expression is carried only
by the brows, eyes and mouth, whose shapes follow the FACS action units (AUs) of each basic
expression (Ekman and Friesen's prototypes) at a random intensity; ``FaceData.masks`` marks those
regions. Classes are FER2013's seven in FER2013's order (plus contempt when ``num_classes=8``).
Everything is drawn with vectorised numpy from one seed, so a given seed always gives the same faces.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch

from fer_lib.data import SPLITS, DatasetInfo, FaceData, register_dataset
from fer_lib.data.cache import cached

# Bump when the drawing changes: part of the faces' fingerprint and of their cache key.
GENERATOR_VERSION = 2
# Face size relative to the frame: cropped close, as FER2013's faces are (version 1 drew 0.8-1.05, a small
# face in a wide frame, where at 48 px the mouth is a few pixels and ResNet18 models learned slowly).
SCALE = (1.2, 1.45)

SYNTHETIC_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")

# Prototype action units of each expression (intensity 0-1). AU1 inner brow raiser, AU2 outer brow
# raiser, AU4 brow lowerer, AU5 upper lid raiser, AU6 cheek raiser, AU7 lid tightener, AU10 upper lip
# raiser, AU12 lip corner puller, AU14 dimpler (one-sided here), AU15 lip corner depressor, AU17 chin
# raiser, AU20 lip stretcher, AU23 lip tightener, AU26 jaw drop.
EXPRESSION_AUS: dict[str, dict[int, float]] = {
    "angry": {4: 1.0, 7: 0.8, 23: 1.0},
    "disgust": {4: 0.5, 7: 0.4, 10: 1.0, 15: 0.6},
    "fear": {1: 1.0, 2: 0.6, 4: 0.6, 5: 1.0, 20: 1.0, 26: 0.5},
    "happy": {6: 1.0, 12: 1.0, 26: 0.25},
    "sad": {1: 1.0, 4: 0.6, 15: 1.0, 17: 0.6},
    "surprise": {1: 1.0, 2: 1.0, 5: 1.0, 26: 1.0},
    "neutral": {},
    "contempt": {12: 0.4, 14: 1.0},
}
AU_INDEX = {au: i for i, au in enumerate((1, 2, 4, 5, 6, 7, 10, 12, 14, 15, 17, 20, 23, 26))}


def _au_table(classes: tuple[str, ...]) -> np.ndarray:
    table = np.zeros((len(classes), len(AU_INDEX)), dtype=np.float32)
    for c, name in enumerate(classes):
        for au, value in EXPRESSION_AUS[name].items():
            table[c, AU_INDEX[au]] = value
    return table


def _u(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    """n uniform draws shaped n x 1 x 1 (one value per image, broadcast over pixels)."""
    return rng.uniform(lo, hi, n).astype(np.float32)[:, None, None]


def _cover(d: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of a shape from its signed distance ``d`` (negative inside), in [0, 1]."""
    return np.clip(0.5 - d / edge, 0.0, 1.0)


def _ellipse_d(u, v, cu, cv, ra, rb):
    """Approximate signed distance to an ellipse (centre cu, cv; half-axes ra, rb)."""
    return (np.sqrt(((u - cu) / ra) ** 2 + ((v - cv) / rb) ** 2) - 1.0) * np.minimum(ra, rb)


def _paint(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """canvas (B x 3 x H x W) <- alpha-blend of ``colour`` (B x 3) with alpha (B x H x W)."""
    a = alpha[:, None].astype(np.float32, copy=False)
    canvas *= 1.0 - a
    canvas += a * colour.astype(np.float32)[:, :, None, None]


def _draw(rng: np.random.Generator, labels: np.ndarray, size: int, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Draw one chunk of faces: (B x 3 x size x size float in [0, 1], B x size x size uint8 masks)."""
    n = len(labels)
    lin = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    y, x = np.meshgrid(lin, lin, indexing="ij")
    x, y = x[None], y[None]
    canvas = np.empty((n, 3, size, size), dtype=np.float32)

    # Background: a colour gradient, a few soft blobs and sometimes stripes (clutter).
    bg0, bg1 = rng.uniform(0, 1, (n, 3)), rng.uniform(0, 1, (n, 3))
    phi = _u(rng, 0, 2 * np.pi, n)
    ramp = (np.cos(phi) * x + np.sin(phi) * y + 1.5) / 3.0
    canvas[:] = bg0[:, :, None, None] * (1 - ramp[:, None]) + bg1[:, :, None, None] * ramp[:, None]
    edge_px = np.float32(2.0 / size) * 1.2
    for _ in range(4):
        d = _ellipse_d(x, y, _u(rng, -1.1, 1.1, n), _u(rng, -1.1, 1.1, n), _u(rng, 0.1, 0.5, n), _u(rng, 0.1, 0.5, n))
        _paint(canvas, _cover(d, edge_px) * _u(rng, 0, 1, n) * (_u(rng, 0, 1, n) < 0.7), rng.uniform(0, 1, (n, 3)))
    freq, ang = _u(rng, 4, 14, n), _u(rng, 0, np.pi, n)
    stripes = 0.5 + 0.5 * np.sin(freq * (np.cos(ang) * x + np.sin(ang) * y) * np.pi)
    _paint(canvas, stripes * _u(rng, 0, 0.35, n) * (_u(rng, 0, 1, n) < 0.4), rng.uniform(0, 1, (n, 3)))

    # Pose: face coordinates (u, v), v downwards, from pixel coordinates by the inverse similarity.
    roll = _u(rng, -0.3, 0.3, n)  # about +-17 degrees
    scale = _u(rng, *SCALE, n)
    tx, ty = _u(rng, -0.12, 0.12, n), _u(rng, -0.1, 0.1, n)
    cr, sr = np.cos(roll), np.sin(roll)
    u = (cr * (x - tx) + sr * (y - ty)) / scale
    v = (-sr * (x - tx) + cr * (y - ty)) / scale
    edge = edge_px / scale
    yaw = _u(rng, -0.25, 0.25, n)
    uf = u - 0.15 * yaw  # inner features shift towards the turned side

    # Identity.
    fa, fb = _u(rng, 0.5, 0.64, n), _u(rng, 0.7, 0.85, n)
    tone = rng.uniform(0, 1, (n, 1))
    skin = (1 - tone) * np.array([0.96, 0.8, 0.68]) + tone * np.array([0.36, 0.22, 0.14]) + rng.normal(0, 0.03, (n, 3))
    hair = rng.uniform(0, 0.45, (n, 1)) * np.array([1.0, 0.8, 0.6]) + rng.uniform(0, 0.15, (n, 3))
    lips = skin * np.array([0.85, 0.55, 0.55])
    eye_colour = rng.uniform(0.05, 0.45, (n, 3))
    ex, ey = _u(rng, 0.19, 0.26, n), _u(rng, -0.14, -0.05, n)
    ew = _u(rng, 0.09, 0.12, n)
    eye_open0 = _u(rng, 0.3, 0.5, n)
    brow_gap0, brow_tilt0, brow_arch = _u(rng, 0.1, 0.15, n), _u(rng, -0.025, 0.025, n), _u(rng, 0.0, 0.04, n)
    brow_half = _u(rng, 0.016, 0.028, n)
    my, mw = _u(rng, 0.36, 0.46, n), _u(rng, 0.15, 0.21, n)
    mouth_curve0 = _u(rng, -0.025, 0.025, n)
    lip_u, lip_l = _u(rng, 0.018, 0.03, n), _u(rng, 0.022, 0.04, n)

    # Expression: the class's action units at a random intensity, each jittered.
    aus = _au_table(classes)[labels] * rng.uniform(0.5, 1.0, (n, 1)) * rng.uniform(0.8, 1.2, (n, len(AU_INDEX)))
    au = {k: aus[:, i][:, None, None].astype(np.float32) for k, i in AU_INDEX.items()}
    side14 = np.where(rng.uniform(0, 1, n) < 0.5, -1.0, 1.0).astype(np.float32)[:, None, None]

    # Neck and hair behind the face, then the face.
    _paint(canvas, _cover(np.maximum(np.abs(u) - fa * 0.45, 0.45 * fb - v), edge), skin * 0.8)
    _paint(canvas, _cover(_ellipse_d(u, v, 0, -0.08, fa * 1.12, fb * 1.0), edge) * (v < 0.2 * fb), hair)
    _paint(canvas, _cover(_ellipse_d(u, v, 0, 0, fa, fb), edge), skin)
    hairline = -fb * _u(rng, 0.55, 0.8, n)
    _paint(canvas, _cover(v - hairline, edge) * _cover(_ellipse_d(u, v, 0, 0, fa, fb), edge), hair)

    mask = np.zeros((n, size, size), dtype=bool)
    for side in (-1.0, 1.0):
        grow = 1.0 + side * yaw * 0.4  # the far eye looks smaller
        cx = side * ex
        w = ew * grow
        # Eyes: AU5 widens, AU7 and AU6 narrow; AU6 also lifts the lower lid.
        openness = eye_open0 * (1 + 1.2 * au[5] - 0.55 * au[7] - 0.4 * au[6])
        h = np.maximum(w * openness, 0.006)
        cyy = ey + 0.25 * h * au[6]
        eye_d = _ellipse_d(uf, v, cx, cyy, w, h)
        _paint(canvas, _cover(eye_d + 0.012, edge), skin * 0.55)  # lid line
        _paint(canvas, _cover(eye_d, edge), np.full((n, 3), 0.93))
        iris_d = np.maximum(_ellipse_d(uf, v, cx + 0.2 * w * yaw * 4, cyy, 0.45 * w, 0.45 * w), eye_d)
        _paint(canvas, _cover(iris_d, edge), eye_colour)
        mask |= _ellipse_d(uf, v, cx, cyy, w * 1.45 + 0.03, h + 0.08) < 0

        # Brows: AU1 raises the inner end, AU2 the outer end, AU4 lowers and pulls the inner end in.
        x_in = side * (0.06 + 0.03 * (1 - au[4]))
        x_out = side * (ex + w * 1.15)
        v_in = ey - brow_gap0 + brow_tilt0 - 0.12 * au[1] + 0.09 * au[4]
        v_out = ey - brow_gap0 - 0.1 * au[2] + 0.03 * au[4]
        t = (uf - x_in) / (x_out - x_in)
        tc = np.clip(t, 0, 1)
        centre = v_in + (v_out - v_in) * tc - brow_arch * 4 * tc * (1 - tc)
        length = np.abs(x_out - x_in)
        along = np.maximum(-t, t - 1) * length
        brow_d = np.maximum(np.abs(v - centre) - brow_half * (1.1 - 0.4 * tc), along)
        _paint(canvas, _cover(brow_d, edge), hair * 0.8)
        mask |= np.maximum(np.abs(v - centre) - brow_half - 0.05, along - 0.05) < 0

    # Nose (identity only).
    ny = _u(rng, 0.14, 0.22, n)
    for side in (-1.0, 1.0):
        _paint(canvas, _cover(_ellipse_d(uf, v, side * 0.045, ny, 0.022, 0.012), edge) * 0.8, skin * 0.45)
    _paint(canvas, _cover(np.maximum(np.abs(uf - 0.03) - 0.006, np.maximum(-0.02 - v, v - ny + 0.02)), edge) * 0.35, skin * 0.6)

    # Mouth: AU12 lifts the corners, AU15 lowers them, AU14 lifts one corner, AU20 stretches,
    # AU23 thins and narrows, AU10 raises the upper lip, AU17 pushes the lower lip up, AU26 opens the jaw.
    half = mw * (1 + 0.3 * au[20] + 0.1 * au[12] - 0.2 * au[23])
    wq = (uf / half).astype(np.float32)
    q = np.clip(1 - wq**2, 0, 1)
    lift = mouth_curve0 + 0.12 * au[12] - 0.11 * au[15] - 0.02 * au[20] + 0.1 * au[14] * (wq * side14 > 0)
    centre = my - lift * wq**2 + 0.03 * au[17] * q
    opening = 0.22 * au[26] + 0.03 * au[20] + 0.035 * au[10]
    upper = centre - (0.3 * opening + 0.035 * au[10]) * q
    lower = centre + 0.7 * opening * q
    outside = (np.abs(wq) - 1) * half
    thin = 1 - 0.6 * np.clip(au[23], 0, 1)
    _paint(canvas, _cover(np.maximum(np.maximum(upper - lip_u * thin * (0.4 + 0.6 * q) - v, v - upper), outside), edge), lips)
    _paint(canvas, _cover(np.maximum(np.maximum(lower - v, v - lower - lip_l * thin * (0.4 + 0.6 * q)), outside), edge), lips)
    _paint(canvas, _cover(np.maximum(np.maximum(upper - v, v - lower), outside), edge), np.full((n, 3), 0.12))
    teeth = np.minimum(upper + 0.035, (upper + lower) / 2)
    _paint(canvas, _cover(np.maximum(np.maximum(upper - v, v - teeth), outside + 0.02), edge) * (opening > 0.04), np.full((n, 3), 0.9))
    _paint(canvas, _cover(np.maximum(np.abs(v - (upper + lower) / 2) - 0.007, outside), edge) * 0.8, lips * 0.5)
    mask |= np.maximum(np.maximum(upper - lip_u - 0.05 - v, v - lower - lip_l - 0.05), outside - 0.05) < 0
    mask &= _ellipse_d(u, v, 0, 0, fa, fb) < 0.02

    # Lighting (direction, strength, gain, colour cast), then sensor noise.
    la = _u(rng, 0, 2 * np.pi, n)
    light = _u(rng, 0.6, 1.25, n) * (1 + _u(rng, 0, 0.45, n) * (np.cos(la) * x + np.sin(la) * y))
    canvas *= light[:, None] * rng.uniform(0.85, 1.15, (n, 3, 1, 1)).astype(np.float32)
    canvas += rng.normal(0, 1, canvas.shape).astype(np.float32) * _u(rng, 0.01, 0.07, n)[:, None]
    return np.clip(canvas, 0, 1), mask.astype(np.uint8)


# Nothing to find: the faces are drawn. Seven classes (FER2013's) unless num_classes=8.
SYNTHETIC = DatasetInfo(label="built-in synthetic faces", classes=SYNTHETIC_CLASSES[:7], synthetic=True)


@register_dataset("synthetic", SYNTHETIC)
def load_synthetic(
    root: str | os.PathLike | None = None,
    num_classes: int = 7,
    per_class: tuple[int, int, int] = (300, 60, 60),
    size: int = 64,
    channels: int = 3,
    seed: int = 0,
    cache: bool = True,
) -> FaceData:
    """SYNTHETIC procedurally drawn faces: ``per_class`` (train, val, test) faces of each class at ``size`` px.

    ``num_classes`` 7 gives FER2013's classes and order, 8 adds contempt. ``root`` is ignored (nothing is read).
    Drawn once and kept in the decoded-data cache like the file-based datasets (the demo profile's 15,050 faces
    take seconds to draw, and a report checks each record's data); ``cache=False`` draws them afresh.
    """
    if num_classes not in (7, 8):
        raise ValueError(f"synthetic faces come with 7 (FER2013) or 8 (+ contempt) classes, not {num_classes}")
    if len(per_class) != len(SPLITS) or min(per_class) < 0 or per_class[0] < 1:
        raise ValueError(f"per_class must be (train, val, test) counts per class with train >= 1, not {per_class}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    key = {"generator": GENERATOR_VERSION, "num_classes": num_classes, "per_class": list(per_class), "size": size,
           "channels": channels, "seed": seed}
    return cached("synthetic", key, lambda: _draw_faces(num_classes, tuple(per_class), size, channels, seed), cache)


def _draw_faces(num_classes: int, per_class: tuple[int, int, int], size: int, channels: int, seed: int) -> FaceData:
    """The faces of :func:`load_synthetic`, drawn (its cache sets their fingerprint)."""
    classes = SYNTHETIC_CLASSES[:num_classes]
    rng = np.random.default_rng(seed)
    split = np.concatenate([np.full(count * num_classes, s, dtype=np.int8) for s, count in enumerate(per_class)])
    labels = np.concatenate([np.tile(np.arange(num_classes), count) for count in per_class])
    order = np.concatenate([rng.permutation(np.nonzero(split == s)[0]) for s in range(len(SPLITS))])
    labels, split = labels[order], split[order]
    images = np.empty((len(labels), channels, size, size), dtype=np.uint8)
    masks = np.empty((len(labels), size, size), dtype=np.uint8)
    chunk = max(1, (1 << 20) // (size * size))  # about 1M pixels per vectorised chunk
    for start in range(0, len(labels), chunk):
        part = slice(start, start + chunk)
        rgb, masks[part] = _draw(rng, labels[part], size, classes)
        if channels == 1:
            rgb = (rgb * np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None, None]).sum(1, keepdims=True)
        images[part] = np.round(rgb * 255).astype(np.uint8)
    return FaceData(
        name="synthetic",
        classes=classes,
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels.astype(np.int64)),
        split=torch.from_numpy(split),
        masks=torch.from_numpy(masks),
        synthetic=True,
        source=f"SYNTHETIC procedural faces (fer_lib.data.synthetic, seed {seed}, {size} px)",
    )


def pixel_linear_accuracy(data: FaceData, c: float = 1e-3, max_iter: int = 500) -> float:
    """Test accuracy of a multinomial logistic regression on the raw pixels of ``data``'s training split.

    How far a linear model gets on these faces: the built-in data must be hard enough that it does
    clearly worse than the networks (scikit-learn, standardised pixels, L2 with C = 1e-3). Solved by
    newton-cg: on the demo's 14,000 faces of 48 px it converged in 12 iterations, about 30 s on 2 threads,
    where lbfgs needed 312 iterations and about 70 s for the same 51.8 % (docs/report.md).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = data.indices("train"), data.indices("test")
    if len(test) == 0:
        raise ValueError("pixel_linear_accuracy needs test faces; this data has none")
    x = data.images.flatten(1).float().numpy() / 255.0
    y = data.labels.numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, solver="newton-cg", max_iter=max_iter))
    with warnings.catch_warnings():  # newton-cg may warn "Line Search failed" at the optimum; a page fails on stderr
        warnings.filterwarnings("ignore", message="Line Search failed")  # not convergence: that one still warns
        model.fit(x[train.numpy()], y[train.numpy()])
    return float(model.score(x[test.numpy()], y[test.numpy()]))


def save_examples(path: str | os.PathLike, per_class: int = 8, size: int = 64, seed: int = 0, num_classes: int = 7) -> None:
    """Save a PNG grid of synthetic faces, one row per class, titled as SYNTHETIC (for the docs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = load_synthetic(num_classes=num_classes, per_class=(per_class, 0, 0), size=size, seed=seed)
    fig, axes = plt.subplots(num_classes, per_class + 1, figsize=(per_class + 1.6, num_classes * 1.05),
                             gridspec_kw={"width_ratios": [1.6] + [1] * per_class})
    for c, name in enumerate(data.classes):
        rows = torch.nonzero(data.labels == c).flatten()[:per_class]
        axes[c, 0].text(0.95, 0.5, name, ha="right", va="center", fontsize=11)
        for k, row in enumerate(rows):
            axes[c, k + 1].imshow(data.images[row].permute(1, 2, 0).numpy())
        for ax in axes[c]:
            ax.axis("off")
    fig.suptitle(f"SYNTHETIC faces: the built-in default dataset ({size} px, seed {seed}); not real data", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=64)
    plt.close(fig)
