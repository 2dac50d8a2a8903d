"""scripts/cpu_study.py: a worker times the next run here and does not start one that cannot finish in time."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from fer_lib.data import load_dataset
from fer_lib.engine import RunConfig

SMOKE = RunConfig(dataset="synthetic", model="resnet18", profile="smoke", seed=0)


def tiny():
    return load_dataset("synthetic", per_class=(4, 1, 1), size=48)


def test_step_speed_times_the_runs_own_step(script) -> None:
    speed = script("cpu_study").step_speed(SMOKE, tiny(), steps=1)
    assert 0 < speed < 1e5


def test_estimate_counts_every_epoch_and_evaluation(script) -> None:
    study = script("cpu_study")
    assert study.estimated_seconds(8, 28_709, 10.0) == pytest.approx(8 * 2870.9 * (1 + study.EVAL_SHARE))


@pytest.mark.parametrize("speed, trains", [(1e-3, False), (1e9, True)])
def test_hours_stops_before_a_run_that_cannot_finish(script, monkeypatch, capsys, speed: float, trains: bool) -> None:
    study = script("cpu_study")
    started = []
    monkeypatch.setattr(study, "queue", lambda: [SMOKE])
    monkeypatch.setattr(study, "load_record", lambda path: None)
    monkeypatch.setattr(study, "claim", lambda cfg: True)
    monkeypatch.setattr(study, "load_dataset", lambda name, **options: tiny())
    monkeypatch.setattr(study, "step_speed", lambda cfg, data: speed)
    monkeypatch.setattr(study, "predict", lambda run: None)
    fake = SimpleNamespace(metrics={"best_val": {"test": {"accuracy": 0.5}}})
    monkeypatch.setattr(study, "get_run", lambda cfg, progress: started.append(cfg.id) or fake)
    monkeypatch.setattr(sys, "argv", ["cpu_study.py", "--hours", "1"])
    assert study.main() == 0
    assert started == ([SMOKE.id] if trains else [])
    assert ("stopping before it starts" in capsys.readouterr().out) is not trains
