"""scripts/precision_check.py: each seed pairs the run trained in fp32 with the one trained in bf16."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

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
    monkeypatch.setattr("sys.argv", ["precision_check.py", "--dataset", "synthetic", "--profile", "smoke", "--seeds", "0"])
    assert check.main() == 1
    assert "nothing to pair" in capsys.readouterr().out
