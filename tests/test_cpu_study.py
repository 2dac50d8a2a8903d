"""scripts/cpu_study.py: a worker times the next run here and does not start one that cannot finish in time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from fer_lib.data import load_dataset
from fer_lib.engine import ConfigError, RunConfig

SMOKE = RunConfig(dataset="synthetic", model="resnet18", profile="smoke", seed=0)


def tiny():
    return load_dataset("synthetic", per_class=(4, 1, 1), size=48)


def test_step_speed_times_the_runs_own_step(script) -> None:
    speed = script("cpu_study").step_speed(SMOKE, tiny(), steps=1)
    assert 0 < speed < 1e5


def test_estimate_counts_every_epoch_and_evaluation(script) -> None:
    study = script("cpu_study")
    assert study.estimated_seconds(8, 28_709, 10.0) == pytest.approx(8 * 2870.9 * (1 + study.EVAL_SHARE))


def run_worker(study, monkeypatch, runs: list, speed_of, *args: str) -> list[str]:
    """Run ``main --hours 1 *args`` over ``runs`` with nothing recorded, every run ``speed_of(cfg)`` img/s; the ids it started."""
    started = []
    monkeypatch.setattr(study, "queue", lambda: runs)
    monkeypatch.setattr(study, "load_record", lambda path: None)
    monkeypatch.setattr(study, "claim", lambda cfg: True)
    monkeypatch.setattr(study, "load_dataset", lambda name, **options: tiny())
    monkeypatch.setattr(study, "trained_here", lambda precision, threads: [])
    monkeypatch.setattr(study, "step_speed", lambda cfg, data: speed_of(cfg))
    monkeypatch.setattr(study, "predict", lambda run: None)
    monkeypatch.setattr(study, "get_run", lambda cfg, progress: started.append(cfg.id) or SimpleNamespace(
        metrics={"best_val": {"test": {"accuracy": 0.5}}}, dir=Path("results/runs") / cfg.id))
    monkeypatch.setattr(sys, "argv", ["cpu_study.py", "--hours", "1", *args])
    monkeypatch.delenv(study.AUTO_ENV, raising=False)  # the worker sets it per run; restored after the test
    assert study.main() == 0
    return started


@pytest.mark.parametrize("speed, trains", [(1e-3, False), (1e9, True)])
def test_hours_does_not_start_a_run_that_cannot_finish(script, monkeypatch, capsys, speed: float, trains: bool) -> None:
    study = script("cpu_study")
    assert run_worker(study, monkeypatch, [SMOKE], lambda cfg: speed) == ([SMOKE.id] if trains else [])
    assert ("skipped, the next that fits trains" in capsys.readouterr().out) is not trains


def test_model_filter_trains_only_that_models_runs(script, monkeypatch) -> None:
    study = script("cpu_study")
    other = RunConfig(dataset="synthetic", model="dan", profile="smoke", seed=0)
    assert run_worker(study, monkeypatch, [SMOKE, other], lambda cfg: 1e9, "--model", "dan") == [other.id]
    with pytest.raises(SystemExit):  # a model the queue does not hold: a clear error, nothing trains
        run_worker(study, monkeypatch, [SMOKE, other], lambda cfg: 1e9, "--model", "ddamfm")


def test_recorded_speed_is_the_median_of_like_runs_trained_on_this_cpu(script, monkeypatch, tmp_path) -> None:
    study = script("cpu_study")
    here = {"device": "cpu", "cpu": study.cpu_name(), "precision": "fp32", "torch_threads": 2}
    plan = {"image_size": SMOKE.plan.image_size, "batch_size": SMOKE.plan.batch_size}

    def record(env: dict, speeds: list[float], model: str = SMOKE.model, **plan_changes):
        return SimpleNamespace(env=env, config=SimpleNamespace(model=model, model_options=SMOKE.model_options),
                               plan={**plan, **plan_changes}, history=[{"images_per_s": v} for v in speeds])

    records = {"a": record(here, [10.0, 30.0, 31.0]), "b": record(here, [32.0]),  # like runs here: median 30.5
               "c": record({**here, "torch_threads": 1}, [5.0]), "d": record({**here, "precision": "bf16"}, [99.0]),
               "e": record(here, [1.0], model="dan"), "f": record(here, [1.0], image_size=224),
               "g": record({**here, "cpu_capability": "not this one"}, [7.0]),  # same name, another instruction set
               "h": record({**here, "cpu_capability": torch.backends.cpu.get_cpu_capability()}, [30.5])}
    for name in records:
        (tmp_path / name).mkdir()
    monkeypatch.setattr(study, "runs_dir", lambda: tmp_path)
    monkeypatch.setattr(study, "load_record", lambda path: records[path.name])
    here_fp32 = study.trained_here("fp32", 2)
    assert here_fp32 == [records[name] for name in "abefh"]  # other threads, precisions and instruction sets: other speeds
    assert study.recorded_speed(SMOKE, here_fp32) == pytest.approx(30.5)  # and other models and sizes too
    assert study.recorded_speed(SMOKE, study.trained_here("fp32", 4)) is None  # never trained so here: time a step


def test_list_estimates_from_records_and_bounds_ablations_by_the_full_model(script, monkeypatch) -> None:
    study = script("cpu_study")
    full = study.queue()[0]  # the headline: DAF-MHSCA with the cpu scope's reading, FER2013 seed 0
    known = {repr(full.model_options): 10.0}
    monkeypatch.setattr(study, "recorded_speed", lambda cfg, records: known.get(repr(cfg.model_options)))
    hours = 8 * 1000 * (1 + study.EVAL_SHARE) / 10.0 / 3600
    assert study.listed_hours(full, [], 1000, 8) == (f"~{hours:.1f} h", pytest.approx(hours))
    by_kind = {(cfg.model, tuple(sorted(study.without_reading("cpu", cfg.model_options)))): cfg for cfg in study.queue()}
    for options in filter(None, study.paper.ABLATION_OPTIONS.values()):  # Table 4's rows and the control: at most the full model's
        ablation = by_kind[("daf_mhsca", tuple(sorted(options)))]
        assert study.listed_hours(ablation, [], 1000, 8)[0] == f"<={hours:.1f} h"
    assert study.listed_hours(by_kind[("dan", ())], [], 1000, 8) == ("?", None)


def test_queue_buys_verdicts_early(script) -> None:
    """A verdict needs two paired seeds: FERPlus's seed 1 pair trains before Table 4, and each Table 4 row's
    seeds 0 and 1 train one after the other."""
    study = script("cpu_study")
    runs = study.queue()
    kinds = [(cfg.dataset, tuple(sorted(study.without_reading("cpu", cfg.model_options))), cfg.model, cfg.seed) for cfg in runs]
    first_ablation = next(i for i, k in enumerate(kinds) if k[0] == "fer2013" and k[1] in {("use_afc",), ("use_daf",)})
    assert {k[3] for k in kinds[:first_ablation] if k[0] == "ferplus"} == {0, 1}
    for options in ({"use_afc": False}, {"use_daf": False}, {"use_ca": False}, {"use_mhsca": False}):
        at = [i for i, k in enumerate(kinds) if k[:2] == ("fer2013", tuple(options)) and k[3] in (0, 1)]
        assert len(at) == 2 and at[1] == at[0] + 1, options
    sweeps = [i for i, cfg in enumerate(runs) if "num_heads" in cfg.model_options or "theta" in cfg.loss_options]
    readings = [i for i, cfg in enumerate(runs) if cfg.model == "daf_mhsca" and cfg.seed == 0
                and study.role(cfg)[0] == "other" and i not in sweeps]
    assert sweeps and readings and max(sweeps) < min(readings)  # Table 5 and Figure 8 before the extra readings


def test_a_resumed_run_is_estimated_for_the_epochs_it_has_left(script, monkeypatch, tmp_path) -> None:
    study = script("cpu_study")
    monkeypatch.setattr(study, "runs_dir", lambda: tmp_path)
    run_dir = tmp_path / SMOKE.id
    assert study.epochs_left(SMOKE) == SMOKE.plan.epochs  # never started
    run_dir.mkdir()
    (run_dir / "history.jsonl").write_text('{"epoch": 1}\n')
    assert study.epochs_left(SMOKE) == SMOKE.plan.epochs  # no checkpoint to resume from: the engine starts again
    (run_dir / study.CHECKPOINTS).mkdir()
    (run_dir / study.CHECKPOINTS / "last.pt").write_bytes(b"")
    assert study.epochs_left(SMOKE) == SMOKE.plan.epochs - 1


def test_role_names_the_headline_the_control_and_each_table4_removal(script) -> None:
    study = script("cpu_study")
    roles = {}
    for cfg in study.queue():
        roles.setdefault(study.role(cfg), set()).add(tuple(sorted(study.without_reading("cpu", cfg.model_options))))
    assert roles[("full", 0)] == {()}
    assert roles[("control", 0)] == {tuple(sorted(study.paper.CONTROL_OPTIONS))}
    for i, options in enumerate(study.paper.REMOVALS.values()):
        assert roles[("removal", i)] == {tuple(sorted(options))}
    assert ("other", 0) in roles  # baselines and loss or head-count variants are none of these


def test_records_git_does_not_track_are_named_with_the_command_that_commits_them(script, tmp_path) -> None:
    study = script("cpu_study")
    git = lambda *args: subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (tmp_path / ".gitignore").write_text("checkpoints/\n")
    run_dir = tmp_path / "runs" / "a"
    (run_dir / study.CHECKPOINTS).mkdir(parents=True)
    (run_dir / "metrics.json").write_text("{}")
    assert study.uncommitted([run_dir]) == [run_dir]  # finished, never added
    git("add", "."), git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "record")
    (run_dir / study.CHECKPOINTS / "last.pt").write_bytes(b"weights")
    assert study.uncommitted([run_dir]) == []  # committed; its checkpoints are ignored
    (run_dir / "predictions.json").write_text("{}")
    assert study.uncommitted([run_dir]) == [run_dir]  # a file written after the commit
    assert study.commit_hint([run_dir]).startswith(f"git add {run_dir} && ")
    outside = tmp_path.parent / f"{tmp_path.name}-no-git"
    outside.mkdir()
    (outside / "metrics.json").write_text("{}")
    assert study.uncommitted([outside]) == []  # not a git checkout: nothing to say


def test_hours_skips_a_run_that_cannot_finish_for_the_next_that_can(script, monkeypatch) -> None:
    study = script("cpu_study")
    slow, fast = SMOKE, RunConfig(dataset="synthetic", model="resnet18", profile="smoke", seed=1)
    assert run_worker(study, monkeypatch, [slow, fast], lambda cfg: 1e-3 if cfg is slow else 1e9) == [fast.id]


@pytest.mark.parametrize("control_speed, timed", [(1e-3, False), (1e9, True)])
def test_hours_skips_an_attention_run_slower_than_the_control_can_fit_without_timing_it(
        script, monkeypatch, capsys, control_speed: float, timed: bool) -> None:
    """A DAF-MHSCA run with no like record is bounded by the control's recorded speed: where even that cannot
    finish in time, no step is timed; otherwise the run's own step decides."""
    study = script("cpu_study")
    sweep = RunConfig(dataset="synthetic", model="daf_mhsca", profile="smoke", seed=0, model_options={"num_heads": 1})
    control = study.paper.CONTROL_OPTIONS
    monkeypatch.setattr(study, "recorded_speed",
                        lambda cfg, records: control_speed if cfg.model_options == control else None)
    steps = []
    started = run_worker(study, monkeypatch, [sweep], lambda cfg: steps.append(cfg.id) or 1e9)
    assert steps == ([sweep.id] if timed else []) and started == steps
    assert ("at least" in capsys.readouterr().out) is not timed
    assert study.speed_bound(SMOKE, []) is None  # another model: no bound, its step is timed


def test_paired_precision_follows_the_full_model_of_the_same_dataset_and_seed(script, monkeypatch) -> None:
    """Both sides of a paired difference train alike: an ablation, the control or a sweep takes the precision
    its dataset's and seed's full-model record trained in; without that record, the machine's default."""
    study = script("cpu_study")
    runs = study.queue()
    fulls = {(c.dataset, c.seed): c for c in runs if study.role(c)[0] == "full"}
    recorded = {fulls[("fer2013", 1)].id: "fp32", fulls[("fer2013", 0)].id: "bf16"}
    monkeypatch.setattr(study, "load_record", lambda path: SimpleNamespace(env={"precision": recorded[path.name]})
                        if path.name in recorded else None)
    monkeypatch.delenv(study.AUTO_ENV, raising=False)
    by_kind = {(c.dataset, c.seed, study.role(c)): c for c in runs}
    removal_1, removal_0 = by_kind[("fer2013", 1, ("removal", 0))], by_kind[("fer2013", 0, ("removal", 0))]
    assert study.partner(removal_1, runs) is fulls[("fer2013", 1)]
    assert study.partner(fulls[("fer2013", 1)], runs) is None
    assert study.paired_precision(removal_1, runs) == "fp32" and study.paired_precision(removal_0, runs) == "bf16"
    assert study.paired_precision(by_kind[("fer2013", 1, ("control", 0))], runs) == "fp32"
    assert study.paired_precision(by_kind[("ferplus", 0, ("control", 0))], runs) is None  # partner not recorded
    try:
        assert study.set_auto_precision(removal_1, runs, "paired") == "fp32"
        assert study.os.environ[study.AUTO_ENV] == "fp32"
        assert study.set_auto_precision(removal_0, runs, "fp32") == "fp32"  # a fixed choice overrides the pair
        study.set_auto_precision(fulls[("ferplus", 0)], runs, "paired")
        assert study.AUTO_ENV not in study.os.environ  # no partner: the machine's default
    finally:
        monkeypatch.delenv(study.AUTO_ENV, raising=False)


@pytest.mark.parametrize("error", [FileNotFoundError("no checkpoints"), RuntimeError("disagrees"),
                                   ConfigError("trained on data 1, not on the data at hand (2)")])
def test_a_run_whose_predictions_cannot_be_written_is_reported_and_the_worker_goes_on(script, monkeypatch, capsys,
                                                                                        error) -> None:
    study = script("cpu_study")

    def fail(directory, record):
        raise error

    monkeypatch.setattr(study, "write_predictions", fail)
    study.predict(SimpleNamespace(id="run-a", dir=Path("results/runs/run-a")))
    assert f"[study] run-a: no predictions.json: {error}" in capsys.readouterr().out
