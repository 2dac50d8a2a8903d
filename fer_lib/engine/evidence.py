"""How a number becomes a verdict: a config's result over seeds, the paired difference of two
configs with its bootstrap interval, and the one rule that turns that interval into a verdict.

>>> summary = seed_summary([0.61, 0.63, 0.62])            # mean, sample std, t interval over seeds
>>> diff = paired_difference(full, without_daf, seed=0)   # S x F per-face correctness, same seeds and faces
>>> verdict(diff, direction=+1).label                     # the paper claims full > without_daf
'supported'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95  # every interval in the project

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive at this budget"
UNTESTABLE = "not testable here"
PENDING = "not trained yet"
SMOKE = "pipeline check only"
LABELS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, UNTESTABLE, PENDING, SMOKE)

MIN_SEEDS = 2  # a verdict other than inconclusive needs this many paired seeds

RULE = (
    "A claim is supported where the 95 % interval of its paired difference (same seeds, same test faces, "
    "bootstrap over faces and seeds) excludes 0 in the paper's direction, contradicted where it excludes 0 "
    "the other way, and inconclusive at this budget otherwise, always with one seed (its interval covers "
    "the test faces, not the training noise); it is not testable here where its data or hardware is absent, "
    "not trained yet where its runs are planned here but not yet recorded, "
    "and builds on the built-in synthetic faces (smoke, demo) give a pipeline check only."
)

# Resampled values per face-level bootstrap: vectorised in batches of about this many numbers.
_BATCH_ELEMENTS = 4_000_000


# ---------------------------------------------------------------- one config over seeds


@dataclass(frozen=True)
class Summary:
    """A result over seeds: n, mean, sample std (ddof 1; None for one seed) and a 95 % interval.

    The interval is Student's t over seeds (mean +- t_{0.975, n-1} * std / sqrt(n)) where n >= 3;
    with one or two seeds there is none (``ci_low`` = ``ci_high`` = None): two values give a range
    (``values``), not an interval. ``method`` says which, in words a report can print.
    """

    n: int
    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None
    method: str
    values: tuple[float, ...]


def seed_summary(values: Sequence[float]) -> Summary:
    """Mean, sample std and t interval of one metric over seeds (see :class:`Summary`)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"seed_summary needs a non-empty list of finite numbers, not {values!r}")
    n, mean = int(arr.size), float(arr.mean())
    std = float(arr.std(ddof=1)) if n >= 2 else None
    if n == 1:
        return Summary(n, mean, std, None, None, "no interval: 1 seed", tuple(arr.tolist()))
    if n == 2:
        return Summary(n, mean, std, None, None, "no interval: 2 seeds (range only)", tuple(arr.tolist()))
    low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=std / math.sqrt(n))
    return Summary(n, mean, std, float(low), float(high), f"t over {n} seeds", tuple(arr.tolist()))


# ---------------------------------------------------------------- two configs, paired


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) in accuracy points (100 x fraction) and its 95 % paired-bootstrap interval."""

    points: float
    ci_low: float
    ci_high: float
    n_seeds: int
    n_faces: int
    method: str


def paired_difference(a: np.ndarray, b: np.ndarray, *, seed: int = 0, n_resamples: int = 9999) -> Difference:
    """The paired difference of two configs scored on the same S seeds (rows) and F test faces (columns).

    ``a``, ``b``: S x F per-face correctness (0/1; a 1-d array is one seed). With D = 100 (a - b):

    - S == 1: ``scipy.stats.bootstrap`` (BCa) resamples faces; the statistic is the mean of D over them.
    - S >= 2: one ``scipy.stats.bootstrap`` call (BCa) resamples seeds and faces independently, each
      with replacement (two samples, ``paired=False``); the statistic is the mean of D over the drawn
      seed rows x face columns. This crossed bootstrap counts both sources of noise (which training
      seed, which test faces) and errs on the wide side.

    Where every entry of D is equal the interval is that single value. Deterministic given ``seed``.
    """
    a, b = (np.atleast_2d(np.asarray(x, dtype=float)) for x in (a, b))
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"a and b must be S x F arrays of the same shape, not {a.shape} and {b.shape}")
    if not (np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all()):
        raise ValueError("a and b must hold per-face correctness, 0 or 1")
    d = 100.0 * (a - b)
    n_seeds, n_faces = d.shape
    points = float(d.mean())
    scheme = "faces" if n_seeds == 1 else "seeds and faces"
    if np.ptp(d) == 0:
        return Difference(points, points, points, n_seeds, n_faces, "all per-face differences equal: no spread")

    if n_seeds == 1:
        samples: tuple[np.ndarray, ...] = (d[0],)

        def statistic(faces: np.ndarray, axis: int = -1) -> np.ndarray:
            return faces.mean(axis=axis)
    else:
        samples = (np.arange(n_seeds), np.arange(n_faces))

        def statistic(rows: np.ndarray, cols: np.ndarray, axis: int = -1) -> np.ndarray:
            return d[rows[..., :, None], cols[..., None, :]].mean(axis=(-2, -1))

    batch = max(1, _BATCH_ELEMENTS // (n_seeds * n_faces))
    res = stats.bootstrap(samples, statistic, n_resamples=n_resamples, batch=batch, vectorized=True, paired=False,
                          confidence_level=CONFIDENCE, method="BCa", rng=np.random.default_rng(seed))
    method = f"bootstrap (BCa, {n_resamples} resamples) over {scheme}: {n_seeds} seed(s) x {n_faces} faces"
    return Difference(points, float(res.confidence_interval.low), float(res.confidence_interval.high), n_seeds, n_faces, method)


# ---------------------------------------------------------------- the rule


@dataclass(frozen=True)
class Verdict:
    """One of :data:`LABELS` and why, in a sentence a report can print."""

    label: str
    why: str
    diff: Difference | None = None


def verdict(diff: Difference | None, direction: int, *, smoke: bool = False, untestable: str | None = None,
            pending: str | None = None) -> Verdict:
    """The verdict of a claim by :data:`RULE`; ``direction`` +1: the paper claims a > b, -1: a < b.

    ``smoke`` (a build on the built-in synthetic faces: profiles smoke and demo) comes first: its verdict
    is "pipeline check only" whatever the numbers.
    ``untestable``: why the claim cannot be tested here (data or hardware absent); kept in ``why``.
    ``pending``: why it is not judged yet although it could be (its planned runs are not recorded yet).
    Fewer than :data:`MIN_SEEDS` seeds give "inconclusive": one seed's interval leaves out the seed noise.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 (paper: a > b) or -1 (paper: a < b), not {direction!r}")
    if smoke:
        extra = f"; not testable here in any case: {untestable}" if untestable else ""
        return Verdict(SMOKE, "synthetic build (smoke, demo): built-in faces check the pipeline, not the claim" + extra, diff)
    if untestable:
        return Verdict(UNTESTABLE, untestable, diff)
    if pending:
        return Verdict(PENDING, pending, diff)
    if diff is None:
        raise ValueError("no difference to judge: pass untestable='<why>' where the claim cannot be tested")
    shown = f"{diff.points:+.2f} points, 95 % interval [{diff.ci_low:+.2f}, {diff.ci_high:+.2f}]"
    if diff.n_seeds < MIN_SEEDS:
        return Verdict(INCONCLUSIVE, f"{shown} over {diff.n_seeds} seed: the interval covers the test faces, "
                                     f"not the training noise; a verdict needs {MIN_SEEDS} or more seeds", diff)
    low, high = direction * diff.ci_low, direction * diff.ci_high  # an undefined (NaN) bound excludes nothing
    if low > 0 and high > 0:
        return Verdict(SUPPORTED, f"{shown} excludes 0 in the paper's direction", diff)
    if low < 0 and high < 0:
        return Verdict(CONTRADICTED, f"{shown} excludes 0 against the paper's direction", diff)
    return Verdict(INCONCLUSIVE, f"{shown} contains 0", diff)


def winner(correct: Mapping[str, np.ndarray], *, seed: int = 0, n_resamples: int = 9999, smoke: bool = False) -> str | None:
    """The config with the highest mean accuracy, only where :func:`verdict` supports it over every other.

    ``correct``: name -> S x F per-face correctness (same seeds and faces for all). None where fewer
    than two configs are given, for a smoke build, or where any comparison is not supported.
    """
    if smoke or len(correct) < 2:
        return None
    best = max(correct, key=lambda name: float(np.mean(correct[name])))
    for name, other in correct.items():
        if name != best:
            diff = paired_difference(correct[best], other, seed=seed, n_resamples=n_resamples)
            if verdict(diff, +1).label != SUPPORTED:
                return None
    return best
