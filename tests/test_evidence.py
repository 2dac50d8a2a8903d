"""Evidence: seed summaries, paired bootstrap differences, the verdict rule, and per-face predictions."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy import stats

from fer_lib.engine import RunConfig, get_run
from fer_lib.engine.evidence import (
    CONTRADICTED,
    INCONCLUSIVE,
    LABELS,
    PENDING,
    RULE,
    SMOKE,
    SUPPORTED,
    UNTESTABLE,
    Difference,
    paired_difference,
    seed_summary,
    verdict,
    winner,
)
from fer_lib.engine.predictions import PREDICTIONS, correct_matrix, load_correct, write_predictions

FACES = 600
RESAMPLES = 2000  # enough for stable bounds on these sizes, quick on 2 cores


def correct(rng: np.random.Generator, accuracy: float, seeds: int = 1, faces: int = FACES) -> np.ndarray:
    return (rng.random((seeds, faces)) < accuracy).astype(np.int8)


def flipped(base: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
    """``base`` (one seed) with faces flipped so accuracy moves by about ``gain`` (fraction)."""
    out = base.copy()
    pool = np.flatnonzero(base == (0 if gain > 0 else 1))
    out[rng.choice(pool, int(round(abs(gain) * base.size)), replace=False)] ^= 1
    return out


# ---------------------------------------------------------------- seed summary


def test_t_interval_matches_scipy() -> None:
    values = [0.612, 0.634, 0.598, 0.621]
    s = seed_summary(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (s.n, s.method) == (4, "t over 4 seeds")
    assert s.mean == pytest.approx(np.mean(values)) and s.std == pytest.approx(np.std(values, ddof=1))
    assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert s.ci_low < s.mean < s.ci_high


def test_fewer_than_three_seeds_give_no_interval() -> None:
    one, two = seed_summary([0.6]), seed_summary([0.6, 0.64])
    assert (one.std, one.ci_low, one.ci_high, one.method) == (None, None, None, "no interval: 1 seed")
    assert two.std == pytest.approx(np.std([0.6, 0.64], ddof=1)) and two.ci_low is None and "range only" in two.method
    with pytest.raises(ValueError):
        seed_summary([])
    with pytest.raises(ValueError):
        seed_summary([0.6, float("nan")])


# ---------------------------------------------------------------- paired difference


@pytest.mark.parametrize("seeds", [1, 3])
def test_large_difference_excludes_zero(seeds: int) -> None:
    rng = np.random.default_rng(0)
    a, b = correct(rng, 0.8, seeds), correct(rng, 0.5, seeds)
    d = paired_difference(a, b, n_resamples=RESAMPLES)
    assert d.points == pytest.approx(100 * (a.mean() - b.mean()))
    assert 0 < d.ci_low < d.points < d.ci_high
    assert (d.n_seeds, d.n_faces) == (seeds, FACES)
    assert ("seeds and faces" if seeds > 1 else "over faces") in d.method


def test_identical_and_nearly_identical_contain_zero() -> None:
    rng = np.random.default_rng(1)
    a = correct(rng, 0.7, 3)
    same = paired_difference(a, a.copy(), n_resamples=RESAMPLES)
    assert (same.points, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)
    b = a.copy()
    b[:, :6] ^= 1  # a few faces flipped both ways: noise, not a difference
    near = paired_difference(a, b, n_resamples=RESAMPLES)
    assert near.ci_low < 0 < near.ci_high and near.ci_low < near.ci_high


def test_paired_is_deterministic_given_seed() -> None:
    rng = np.random.default_rng(2)
    a, b = correct(rng, 0.62, 3), correct(rng, 0.6, 3)
    first = paired_difference(a, b, seed=7, n_resamples=RESAMPLES)
    assert paired_difference(a, b, seed=7, n_resamples=RESAMPLES) == first
    assert paired_difference(a, b, seed=8, n_resamples=RESAMPLES) != first


def test_paired_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="same shape"):
        paired_difference(np.ones((2, 5)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="0 or 1"):
        paired_difference(np.full((1, 5), 0.5), np.ones((1, 5)))


# ---------------------------------------------------------------- the rule


def test_clear_difference_supported_reversed_contradicted() -> None:
    rng = np.random.default_rng(3)
    base = correct(rng, 0.6)[0]
    better = np.stack([flipped(base, 0.08, rng), flipped(base, 0.08, rng)])
    base = np.stack([base, base])
    d = paired_difference(better, base, n_resamples=RESAMPLES)
    assert verdict(d, +1).label == SUPPORTED
    assert verdict(d, -1).label == CONTRADICTED
    reversed_ = paired_difference(base, better, n_resamples=RESAMPLES)
    assert verdict(reversed_, +1).label == CONTRADICTED and verdict(reversed_, -1).label == SUPPORTED
    assert "+8.00 points" in verdict(d, +1).why


def test_difference_inside_seed_noise_is_inconclusive() -> None:
    """Per seed the gain is +8, -4, +5 points: each seed alone is clear, the seeds together are not."""
    rng = np.random.default_rng(4)
    base = correct(rng, 0.6, faces=2000)[0]
    gains = (0.08, -0.04, 0.05)
    a = np.stack([flipped(base, g, rng) for g in gains])
    b = np.stack([base] * len(gains))
    d = paired_difference(a, b, n_resamples=RESAMPLES)
    assert d.points == pytest.approx(100 * np.mean(gains))
    assert verdict(d, +1).label == INCONCLUSIVE and verdict(d, -1).label == INCONCLUSIVE
    one_seed = paired_difference(a[:1], b[:1], n_resamples=RESAMPLES)
    # One seed alone looks clear (its interval excludes 0) but leaves the seed noise out: inconclusive by the rule.
    assert one_seed.ci_low > 0
    assert verdict(one_seed, +1).label == INCONCLUSIVE and "1 seed" in verdict(one_seed, +1).why


def test_undefined_bound_is_inconclusive() -> None:
    undefined = Difference(points=1.0, ci_low=0.5, ci_high=float("nan"), n_seeds=1, n_faces=10, method="test")
    assert verdict(undefined, +1).label == INCONCLUSIVE and verdict(undefined, -1).label == INCONCLUSIVE


def test_smoke_and_untestable() -> None:
    rng = np.random.default_rng(5)
    d = paired_difference(correct(rng, 0.9), correct(rng, 0.3), n_resamples=RESAMPLES)
    assert verdict(d, +1, smoke=True).label == SMOKE
    assert verdict(None, +1, smoke=True).label == SMOKE
    v = verdict(None, +1, untestable="RAF-DB is not on this machine")
    assert v.label == UNTESTABLE and "RAF-DB" in v.why
    assert verdict(None, +1, pending="not trained yet").label == PENDING  # planned here, not recorded yet
    assert verdict(None, +1, smoke=True, pending="not trained yet").label == SMOKE
    with pytest.raises(ValueError, match="untestable"):
        verdict(None, +1)
    with pytest.raises(ValueError, match="direction"):
        verdict(d, 0)


def test_rule_is_one_sentence_naming_every_label() -> None:
    assert RULE.endswith(".") and RULE.count(". ") == 0
    assert all(label in RULE for label in LABELS)


def test_winner_only_when_backed() -> None:
    rng = np.random.default_rng(6)
    base = correct(rng, 0.6, faces=1000)[0]
    full = flipped(base, 0.1, rng)
    close = flipped(flipped(full, -0.033, rng), 0.03, rng)  # 0.3 points below, differing on 63 faces
    two = lambda x: np.stack([x, x])  # noqa: E731  (two seeds that agree: a verdict needs two)
    configs = {"bare": two(base), "full": two(full), "close": two(close)}
    assert winner(configs, n_resamples=RESAMPLES) is None  # "full" beats "bare" clearly, "close" not
    configs.pop("close")
    assert winner(configs, n_resamples=RESAMPLES) == "full"
    assert winner({k: v[:1] for k, v in configs.items()}, n_resamples=RESAMPLES) is None  # one seed: no winner
    assert winner(configs, n_resamples=RESAMPLES, smoke=True) is None
    assert winner({"full": configs["full"]}) is None


# ---------------------------------------------------------------- per-face predictions of a real run


# The smallest run, trained in fp32 so that fp32 predictions must reproduce its record exactly.
SMOKE_FP32 = RunConfig(dataset="fer2013", model="resnet18", profile="smoke", seed=0, overrides={"precision": "fp32"})


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory):
    return get_run(SMOKE_FP32, root=tmp_path_factory.mktemp("results"), progress=False)


def test_predictions_reproduce_the_record(smoke_run) -> None:
    assert load_correct(smoke_run) is None  # nothing written yet
    out = write_predictions(smoke_run.dir, smoke_run)
    stored = json.loads((smoke_run.dir / PREDICTIONS).read_text())
    assert stored == json.loads(json.dumps(out)) and stored["split"] == "test"
    assert stored["fingerprint"] == smoke_run.data["fingerprint"]
    assert len(stored["indices"]) == len(stored["labels"]) == len(stored["best_val"]) == len(stored["last"])
    for which in ("best_val", "last"):
        right = load_correct(smoke_run, which)
        recorded = smoke_run.metrics[which]["test"]["accuracy"]
        assert right.dtype == np.int8 and right.mean() == recorded  # exact in fp32
        assert stored["check"][which] == {"recorded_accuracy": recorded, "recomputed_accuracy": recorded, "faces_moved": 0}
    matrix = correct_matrix([smoke_run, smoke_run], "last")
    assert matrix.shape == (2, len(stored["labels"]))


def test_predictions_refuse_a_record_they_do_not_reproduce(smoke_run, tmp_path) -> None:
    metrics = json.loads(json.dumps(smoke_run.metrics))
    confusion = np.asarray(metrics["last"]["test"]["confusion"])
    row, col = np.unravel_index(confusion.argmax(), confusion.shape)
    confusion[row, col] -= 5  # five faces recorded as predicted another class: not what the weights give
    confusion[row, (col + 1) % len(confusion)] += 5
    metrics["last"]["test"]["confusion"] = confusion.tolist()
    edited = dataclasses.replace(smoke_run, metrics=metrics)
    with pytest.raises(RuntimeError, match="move 5 test faces"):
        write_predictions(tmp_path, edited)
    assert not (tmp_path / PREDICTIONS).exists()
