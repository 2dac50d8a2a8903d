"""The claims ledger: one row per claim, each verdict by the one rule, from per-face predictions."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

from fer_lib import claims, paper
from fer_lib.engine import evidence

FACES = 600


def fake_record(tmp_path, name: str, seed: int, accuracy: float, rng: np.random.Generator):
    """A finished record whose predictions.json gets ``accuracy`` of FACES faces right."""
    folder = tmp_path / f"{name}-{seed}"
    folder.mkdir()
    labels = rng.integers(0, 7, FACES)
    right = rng.random(FACES) < accuracy
    preds = np.where(right, labels, (labels + 1) % 7)
    stored = {"split": "test", "indices": list(range(FACES)), "labels": labels.tolist(), "best_val": preds.tolist(),
              "last": preds.tolist(), "fingerprint": "f"}
    (folder / "predictions.json").write_text(json.dumps(stored))
    return SimpleNamespace(dir=folder, data={"fingerprint": "f"}, config=SimpleNamespace(seed=seed),
                           metrics={"best_val": {"test": {"accuracy": float(right.mean())}}})


def groups(tmp_path, full: float, without_daf: float) -> dict:
    rng = np.random.default_rng(0)
    runs = lambda name, acc: [fake_record(tmp_path, name, s, acc, rng) for s in range(3)]  # noqa: E731
    return {"table3": {(paper.OURS, "fer2013", "scratch"): runs("full3", full)},
            "table4": {(paper.OURS, "fer2013"): runs("full", full), ("w/o DAF", "fer2013"): runs("nodaf", without_daf)}}


def row(rows, start: str):
    return next(r for r in rows if r.claim.startswith(start))


def test_one_row_per_claim_and_verdicts_by_the_rule(tmp_path) -> None:
    rows = claims.ledger(groups(tmp_path, 0.70, 0.55), ["fer2013", "ferplus"], smoke=False, budget="8 epochs at 72 px",
                         figure_dataset="fer2013", missing={"ferplus": "fer2013new.csv not found"})
    assert all(r.verdict in evidence.LABELS for r in rows)
    assert row(rows, "w/o DAF lowers accuracy on FER2013").verdict == evidence.SUPPORTED
    assert row(rows, "w/o AFC lowers accuracy on FER2013").verdict == evidence.UNTESTABLE  # not in the plan
    (tmp_path / "planned").mkdir()
    planned = groups(tmp_path / "planned", 0.70, 0.55)
    planned["table4"][("w/o AFC", "fer2013")] = [None, None, None]  # planned on data at hand, no record yet
    pending = claims.ledger(planned, ["fer2013"], smoke=False, budget="b", figure_dataset=None)
    assert row(pending, "w/o AFC lowers accuracy on FER2013").verdict == evidence.PENDING  # not "not testable"
    assert row(rows, "w/o DAF lowers accuracy on FERPlus").why == "fer2013new.csv not found"
    assert row(rows, "DAF-MHSCA reaches 74.33 % on FER2013").verdict == evidence.UNTESTABLE
    assert "8 epochs at 72 px" in row(rows, "DAF-MHSCA reaches 74.33 % on FER2013").why
    claims_of_table4 = [r for r in rows if r.source == paper.TABLE4_SOURCE]
    assert len(claims_of_table4) == 2 * (len(paper.TABLE4) - 1)  # the 4 ablations per dataset (the full-model row excluded)
    assert any(r.extra for r in rows) and any("N_h = 4" in r.claim for r in rows) and any("theta" in r.claim for r in rows)


def test_reversed_difference_is_contradicted_and_noise_inconclusive(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    reversed_rows = claims.ledger(groups(tmp_path / "a", 0.55, 0.70), ["fer2013"], smoke=False, budget="b", figure_dataset=None)
    assert row(reversed_rows, "w/o DAF").verdict == evidence.CONTRADICTED
    (tmp_path / "b").mkdir()
    noise = claims.ledger(groups(tmp_path / "b", 0.60, 0.60), ["fer2013"], smoke=False, budget="b", figure_dataset=None)
    assert row(noise, "w/o DAF").verdict == evidence.INCONCLUSIVE


def test_smoke_builds_judge_nothing(tmp_path) -> None:
    rows = claims.ledger(groups(tmp_path, 0.9, 0.1), ["fer2013"], smoke=True, budget="b", figure_dataset="fer2013")
    assert {r.verdict for r in rows} == {evidence.SMOKE}


def test_one_seed_is_inconclusive_and_says_seed(tmp_path) -> None:
    full = groups(tmp_path, 0.80, 0.50)
    one = {name: {key: records[:1] for key, records in group.items()} for name, group in full.items()}
    found = row(claims.ledger(one, ["fer2013"], smoke=False, budget="b", figure_dataset=None), "w/o DAF")
    assert found.verdict == evidence.INCONCLUSIVE and "seed 0:" in found.ours and "seeds" not in found.ours
    assert "seeds 0, 1, 2:" in row(claims.ledger(full, ["fer2013"], smoke=False, budget="b", figure_dataset=None), "w/o DAF").ours


def test_ledger_script_prints_the_smoke_ledger(script, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.argv", ["ledger.py", "--profile", "smoke"])
    script("ledger").main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| claim |") and len(lines) > 10
    assert all(f"| {evidence.SMOKE} |" in line for line in lines[2:])  # nothing judged on synthetic faces


def test_a_pair_trained_in_two_precisions_says_so(tmp_path) -> None:
    full = groups(tmp_path, 0.70, 0.55)
    for seed, record in enumerate(full["table4"][(paper.OURS, "fer2013")]):
        record.env = {"precision": "bf16" if seed == 0 else "fp32"}
    for record in full["table4"][("w/o DAF", "fer2013")]:
        record.env = {"precision": "fp32"}
    ours = row(claims.ledger(full, ["fer2013"], smoke=False, budget="b", figure_dataset=None), "w/o DAF").ours
    assert ours.endswith("; seed 0 pair bf16 with fp32")
    assert claims.precision_note(full["table4"][("w/o DAF", "fer2013")], full["table4"][("w/o DAF", "fer2013")]) == ""


def test_best_of_a_sweep_names_the_comparison_that_decides(tmp_path) -> None:
    rng = np.random.default_rng(1)
    heads = {1: 0.40, 2: 0.75, 4: 0.70}
    three = {"table5": {(h, "ferplus"): [fake_record(tmp_path, f"h{h}", s, acc, rng) for s in range(3)]
                        for h, acc in heads.items()}}
    found = row(claims.ledger(three, [], smoke=False, budget="b", figure_dataset=None), "N_h = 4 heads is best on FERPlus")
    assert found.verdict == evidence.CONTRADICTED and found.why.startswith("vs N_h 2:")
    one = {"table5": {key: records[:1] for key, records in three["table5"].items()}}
    found = row(claims.ledger(one, [], smoke=False, budget="b", figure_dataset=None), "N_h = 4 heads is best on FERPlus")
    # one seed: inconclusive, and the why quotes the comparison where 4 heads fare worst, not the first listed
    assert found.verdict == evidence.INCONCLUSIVE and found.why.startswith("vs N_h 2:") and "seed" in found.why
