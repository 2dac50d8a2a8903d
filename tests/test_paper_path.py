"""The GPU profile's code path, exercised on the CPU: 224 px, the paper recipe, bf16 autocast with
channels_last, two optimiser steps on a tiny real FER2013 subset, then evaluation and the record.

So a lent GPU does not find the first bugs of the `paper` profile (scripts/gpu_paper.sh runs it there).
"""

from __future__ import annotations

import pytest
import torch

from fer_lib.data import FaceData, data_root, load_dataset
from fer_lib.engine import RunConfig
from fer_lib.engine import distributed as D
from fer_lib.engine.records import load_record, read_json
from fer_lib.engine.precision import cpu_supports_bf16, resolve_precision
from fer_lib.engine.train import train_run

pytestmark = pytest.mark.realdata


def tiny_fer2013(per_split: dict[str, int]) -> FaceData:
    """The first rows of each split of real FER2013 (its fingerprint marks it as a subset)."""
    if not (data_root() / "fer2013").exists():
        pytest.skip(f"{data_root() / 'fer2013'} not found: real data lives under $FER_DATA or ../shared/data")
    data = load_dataset("fer2013")
    rows = torch.cat([data.indices(s)[:n] for s, n in per_split.items()])
    return FaceData(data.name, data.classes, data.images[rows], data.labels[rows], data.split[rows],
                    source=data.source, fingerprint=f"{data.fingerprint}-first-{'-'.join(map(str, per_split.values()))}")


def test_paper_profile_trains_in_bf16_channels_last_on_the_cpu(tmp_path) -> None:
    # Two steps of 8 faces: on a CPU without native bf16 (emulated) each 224 px image costs seconds.
    data = tiny_fer2013({"train": 16, "val": 8, "test": 8})
    cfg = RunConfig(dataset="fer2013", profile="paper", recipe="paper", overrides={"epochs": 1, "batch_size": 8, "precision": "bf16"})
    plan = cfg.plan
    assert (plan.image_size, plan.optimizer, plan.lr, plan.schedule) == (224, "adam", 1e-4, "none")
    train_run(cfg, tmp_path, D.setup("cpu"), progress=False, data=data)
    record = load_record(tmp_path)
    assert record is not None and record.metrics["epochs_trained"] == 1
    env = read_json(tmp_path / "env.json")
    assert env["precision"] == "bf16" and env["channels_last"] is True and env["amp"] == "bfloat16"
    assert (env["precision_note"] is None) == cpu_supports_bf16()
    row = record.history[0]
    assert row["train_accuracy"] is not None and 0 <= row["test_accuracy"] <= 1
    assert {"grad_wce", "grad_dna", "grad_mhv"} <= set(row)  # the loss-term probes ran (step 0 of 2)
    assert record.data["fingerprint"] == data.fingerprint and record.data["n_train_used"] == 16


def test_precision_setting() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == ("fp32", None)
    used, note = resolve_precision("auto", cpu)
    assert used == ("bf16" if cpu_supports_bf16() else "fp32")
    assert (note is None) == cpu_supports_bf16()
    with pytest.raises(Exception, match="precision"):
        RunConfig(dataset="fer2013", profile="cpu", overrides={"precision": "fp16"}).plan
