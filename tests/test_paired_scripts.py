"""scripts/precision_check.py and scripts/paired.py: runs paired seed by seed, judged by the report's rule."""

from __future__ import annotations

import argparse
import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

from fer_lib.cli import add_config_arguments, configs_from_args
from fer_lib.engine import RunConfig

CFG = RunConfig(dataset="synthetic", model="resnet18", profile="smoke", seed=0)


def test_a_record_counts_for_the_precision_it_trained_in_not_its_setting(script, monkeypatch) -> None:
    check = script("precision_check")
    bf16 = dataclasses.replace(CFG, overrides={"precision": "bf16"})
    stored = {CFG.id: SimpleNamespace(env={"precision": "fp32"}),  # precision=auto, resolved to fp32 there
              bf16.id: SimpleNamespace(env={"precision": "bf16"})}
    monkeypatch.setattr(check, "load_record", lambda path: stored.get(path.name))
    assert check.record_in(CFG, "fp32") is stored[CFG.id]
    assert check.record_in(CFG, "bf16") is stored[bf16.id]
    del stored[bf16.id]
    assert check.record_in(CFG, "bf16") is None  # the auto run trained in fp32 is not a bf16 record


def test_no_pair_is_said_and_fails(script, monkeypatch, capsys) -> None:
    check = script("precision_check")
    monkeypatch.setattr(check, "load_record", lambda path: None)
    monkeypatch.setattr("sys.argv", ["precision_check.py", "--dataset", "synthetic", "--profile", "smoke", "--seed", "0"])
    assert check.main() == 1
    assert "nothing to pair" in capsys.readouterr().out


def run(tmp_path, name: str, seed: int, right: np.ndarray, precision: str) -> SimpleNamespace:
    folder = tmp_path / name
    folder.mkdir()
    labels = np.zeros(len(right), dtype=int)
    stored = {"indices": list(range(len(right))), "labels": labels.tolist(), "best_val": np.where(right, 0, 1).tolist(),
              "fingerprint": "f"}
    (folder / "predictions.json").write_text(json.dumps(stored))
    return SimpleNamespace(id=name, dir=folder, data={"fingerprint": "f"}, config=SimpleNamespace(seed=seed),
                           env={"precision": precision}, metrics={"best_val": {"test": {"accuracy": float(right.mean())}}})


def test_precision_check_pairs_seeds_trained_in_both_and_names_no_winner_on_noise(script, monkeypatch, capsys, tmp_path) -> None:
    check = script("precision_check")
    argv = ["--dataset", "synthetic", "--profile", "smoke", "--model", "resnet18", "--seed", "0", "1", "-m", "head_gate=channel_sum"]
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    rng = np.random.default_rng(1)
    stored = {}
    for cfg in configs_from_args(parser.parse_args(argv)):
        seed = cfg.seed
        right = rng.random(2000) < 0.6
        for precision, faces in (("fp32", right), ("bf16", np.roll(right, 1))):  # same accuracy, other faces
            run_id = dataclasses.replace(cfg, overrides={"precision": precision}).id
            stored[run_id] = run(tmp_path, run_id, seed, faces, precision)
    monkeypatch.setattr(check, "load_record", lambda path: stored.get(path.name))
    monkeypatch.setattr("sys.argv", ["precision_check.py", *argv])
    assert check.main() == 0
    out = capsys.readouterr().out
    assert "on the same 2000 test faces, seeds 0, 1" in out
    assert "no precision is more accurate beyond the noise" in out
    assert "pair bf16 with fp32" not in out  # every pair mixes precisions: saying so is no information


def test_precision_check_says_how_to_write_missing_predictions(script, monkeypatch, capsys, tmp_path) -> None:
    check = script("precision_check")
    cfg = dataclasses.replace(CFG, model="daf_mhsca", model_options={"head_gate": "channel_sum"})
    stored = {}
    for precision in ("fp32", "bf16"):
        run_id = dataclasses.replace(cfg, overrides={"precision": precision}).id
        stored[run_id] = run(tmp_path, run_id, 0, np.ones(10, dtype=bool), precision)
        (stored[run_id].dir / "predictions.json").unlink()
    monkeypatch.setattr(check, "load_record", lambda path: stored.get(path.name))
    monkeypatch.setattr("sys.argv", ["precision_check.py", "--dataset", "synthetic", "--profile", "smoke", "--seed", "0"])
    assert check.main() == 1
    from fer_lib.engine.predictions import HOW_TO_WRITE
    assert HOW_TO_WRITE in capsys.readouterr().out


@pytest.mark.parametrize("a_right, verdict", [(0.9, "supported"), (0.5, "contradicted"), (None, "inconclusive")])
def test_paired_judges_a_against_b_by_the_rule(script, monkeypatch, capsys, tmp_path, a_right: float | None, verdict: str) -> None:
    paired = script("paired")
    rng = np.random.default_rng(0)
    faces = lambda p: rng.random(2000) < p  # noqa: E731
    b_right = rng.random(2000) < 0.7
    same = np.roll(b_right, 1)  # a_right None: B's accuracy, on other faces
    stored = {f"a{s}": run(tmp_path, f"a{s}", s, same if a_right is None else faces(a_right), "bf16") for s in (0, 1)}
    stored.update({f"b{s}": run(tmp_path, f"b{s}", s, b_right, "fp32" if s else "bf16") for s in (0, 1)})
    monkeypatch.setattr(paired, "load_record", lambda path: stored.get(path.name))
    monkeypatch.setattr("sys.argv", ["paired.py", "a0", "a1", "--vs", "b0", "b1"])
    assert paired.main() == 0
    out = capsys.readouterr().out
    assert f"A beats B: {verdict}" in out and "seed 1 pair bf16 with fp32" in out


def test_paired_refuses_lists_of_different_lengths(script, monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["paired.py", "a0", "a1", "--vs", "b0"])
    with pytest.raises(SystemExit, match="pair them one to one"):
        script("paired").main()


def test_paired_writes_missing_predictions_from_checkpoints(script, monkeypatch, capsys, tmp_path) -> None:
    paired = script("paired")
    stored = {name: run(tmp_path, name, 0, np.ones(10, dtype=bool), "fp32") for name in ("a0", "b0")}
    kept = (stored["b0"].dir / "predictions.json").read_text()
    (stored["b0"].dir / "predictions.json").unlink()
    written = []

    def write(run_dir, record):
        written.append(record.id)
        (run_dir / "predictions.json").write_text(kept)

    monkeypatch.setattr(paired, "load_record", lambda path: stored.get(path.name))
    monkeypatch.setattr(paired, "write_predictions", write)
    monkeypatch.setattr("sys.argv", ["paired.py", "a0", "--vs", "b0"])
    assert paired.main() == 0
    assert written == ["b0"]  # only the run that lacked them
    assert "b0: no predictions.json; writing it" in capsys.readouterr().out


def test_paired_says_why_predictions_cannot_be_written(script, monkeypatch, tmp_path) -> None:
    paired = script("paired")
    stored = {name: run(tmp_path, name, 0, np.ones(10, dtype=bool), "fp32") for name in ("a0", "b0")}
    (stored["b0"].dir / "predictions.json").unlink()

    def gone(run_dir, record):
        raise FileNotFoundError("checkpoint best_val.pt is gone")

    monkeypatch.setattr(paired, "load_record", lambda path: stored.get(path.name))
    monkeypatch.setattr(paired, "write_predictions", gone)
    monkeypatch.setattr("sys.argv", ["paired.py", "a0", "--vs", "b0"])
    with pytest.raises(SystemExit, match="b0: no predictions.json, and it cannot be written here: checkpoint"):
        paired.main()


def test_falls_counts_drops_by_kind_and_clipping_in_current_records_only(script, tmp_path) -> None:
    from fer_lib.engine.config import TRAINING_CODE_VERSION
    from fer_lib.paper import CONTROL_OPTIONS

    def record(name: str, accs: tuple, options: dict, clip=None, code=TRAINING_CODE_VERSION, epochs=8, val=None) -> None:
        d = tmp_path / "runs" / f"ferplus-daf_mhsca-cpu-{name}"
        d.mkdir(parents=True)
        plan = {"epochs": epochs, **({"grad_clip": clip} if clip else {})}
        (d / "config.json").write_text(json.dumps({"code": code, "config": {"model_options": options}, "plan": plan}))
        val = val or accs
        (d / "history.jsonl").write_text("".join(json.dumps({"train_accuracy": a, "val_accuracy": v}) + "\n"
                                                 for a, v in zip(accs, val)))
        (d / "metrics.json").write_text("{}")

    record("fell", (0.37, 0.54, 0.47), {})                      # 7 points: a fall
    record("steady", (0.30, 0.40, 0.39), {})                    # 1 point: not one
    record("clipped", (0.36, 0.49, 0.54), {}, clip=5.0, val=(0.38, 0.32, 0.37))  # never fell, but stalled 6 points
    record("control", (0.39, 0.54, 0.61), CONTROL_OPTIONS)
    record("old", (0.5, 0.1), {}, code=TRAINING_CODE_VERSION - 1)  # another training code: left out
    record("short", (0.5, 0.1), {}, epochs=2)                      # not the profile's epochs: left out
    falls = script("falls").falls
    out = falls(tmp_path)
    assert sorted(out) == ["attention", "attention (clipped)", "control"]
    fell = {rid: d["train_accuracy"] for rid, d in out["attention"]}
    assert fell == pytest.approx({"ferplus-daf_mhsca-cpu-fell": 7.0, "ferplus-daf_mhsca-cpu-steady": 1.0})
    assert [d["train_accuracy"] for _, d in out["control"]] == [0.0]
    assert [d["train_accuracy"] for _, d in out["attention (clipped)"]] == [0.0]
    assert [d["val_accuracy"] for _, d in out["attention (clipped)"]] == pytest.approx([6.0])  # a stall


def test_results_summary_names_the_clipping_from_the_plan_and_every_other_override(script, tmp_path) -> None:
    """A record of the clipped profile and one clipped by an override read alike; an unclipped one says nothing."""
    def record(name: str, plan_clip, overrides: dict) -> None:
        d = tmp_path / "runs" / f"fer2013-daf_mhsca-cpu-{name}"
        d.mkdir(parents=True)
        config = {"dataset": "fer2013", "model": "daf_mhsca", "model_options": {"head_gate": "channel_sum"},
                  "loss_options": {}, "profile": "cpu", "seed": 0, "overrides": overrides}
        plan = {"recipe": "scratch", "optimizer": "adamw", "lr": 5e-4, "image_size": 72, "epochs": 8,
                **({"grad_clip": plan_clip} if plan_clip is not None else {})}
        (d / "config.json").write_text(json.dumps({"code": 3, "config": config, "plan": plan}))
        (d / "history.jsonl").write_text(json.dumps({"train_accuracy": 0.5}) + "\n")
        (d / "env.json").write_text(json.dumps({"device": "cpu", "precision": "bf16"}))
        test = {"accuracy": 0.57, "balanced_accuracy": 0.5}
        (d / "metrics.json").write_text(json.dumps({"best_val": {"epoch": 8, "test": test}}))

    record("a", 5.0, {})
    record("b", 5.0, {"grad_clip": 5.0, "epochs": 8})
    record("c", None, {})
    rows = {row.split("`")[-2]: row for row in script("results_summary").rows(tmp_path)}
    assert "(adamw lr 0.0005, clip 5) |" in rows["fer2013-daf_mhsca-cpu-a"]
    assert "(adamw lr 0.0005, clip 5, epochs=8) |" in rows["fer2013-daf_mhsca-cpu-b"]
    assert "(adamw lr 0.0005) |" in rows["fer2013-daf_mhsca-cpu-c"]


def test_bench_workers_times_each_process_of_a_layout(script) -> None:
    bench = script("bench_workers")
    args = SimpleNamespace(image_size=32, batch_size=2, steps=1, fp32=True)
    rates = bench.images_per_second(2, 1, args)
    assert len(rates) == 2 and all(0 < r < 1e6 for r in rates)


@pytest.mark.parametrize("mode", ["slices", "shifted"])
def test_bench_small_map_candidates_compute_the_librarys_function(script, mode) -> None:
    """The benchmark compares like with like: each candidate's output and gradients equal SmallMapConv2d's."""
    import torch
    from fer_lib.models.layers import SmallMapConv2d

    bench = script("bench_small_map")
    torch.manual_seed(0)
    for kernel, stride, padding, dilation in ((3, 1, 1, 1), (3, 2, 1, 1), (1, 1, 0, 1), (3, 1, 2, 2)):
        base = SmallMapConv2d(6, 5, kernel, stride, padding, dilation, bias=True)
        other = bench.Candidate(6, 5, kernel, stride, padding, dilation, bias=True)
        other.mode = mode
        other.load_state_dict(base.state_dict())
        x = torch.randn(2, 6, 7, 7)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = base(xa), other(xb)
        g = torch.randn_like(ya)
        ya.backward(g)
        yb.backward(g)
        torch.testing.assert_close(yb, ya)
        torch.testing.assert_close(xb.grad, xa.grad)
        torch.testing.assert_close(other.weight.grad, base.weight.grad)


def test_bench_small_map_pairs_whole_steps(script) -> None:
    base, ratio = script("bench_small_map").step_ratio(batch_size=2, pairs=1, image_size=72)
    assert base > 0 and 0 < ratio < 100
