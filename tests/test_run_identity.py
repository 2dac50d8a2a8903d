"""A run record is tied to its data and to the code that trains: never returned for other data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from data_fixtures import fer2013_rows, write_fer2013_csv
from fer_lib.data import load_dataset
from fer_lib.engine import ConfigError, RunConfig, get_run
from fer_lib.engine import config as config_module

# The smallest real-format run: ResNet18 at 32 px for one epoch on a few dozen faces.
CFG = RunConfig(dataset="fer2013", model="resnet18", profile="cpu",
                overrides={"epochs": 1, "batch_size": 8, "warmup_epochs": 0}, image_size=32)


def test_a_record_is_not_returned_for_other_data(tmp_path, monkeypatch) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    write_fer2013_csv(small / "fer2013" / "fer2013.csv", fer2013_rows((14, 7, 7)))
    write_fer2013_csv(large / "fer2013" / "fer2013.csv", fer2013_rows((21, 7, 7)))
    monkeypatch.setenv("FER_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "results"

    monkeypatch.setenv("FER_DATA", str(small))
    first = get_run(CFG, root=results, progress=False)
    assert first.data["fingerprint"] == load_dataset("fer2013").fingerprint and first.data["n_train"] == 14
    assert get_run(CFG, root=results, train=False).id == first.id  # same data: the record is the answer

    monkeypatch.setenv("FER_DATA", str(large))
    assert load_dataset("fer2013").fingerprint != first.data["fingerprint"]
    for train in (True, False):
        with pytest.raises(ConfigError, match=r"trained on other data .* 14 training faces .* 21 training faces"):
            get_run(CFG, root=results, train=train)
    assert (results / "runs" / first.id / "metrics.json").exists()  # the old record is kept, not overwritten


def test_the_training_code_version_is_part_of_the_id(monkeypatch) -> None:
    before = CFG.id
    monkeypatch.setattr(config_module, "TRAINING_CODE_VERSION", config_module.TRAINING_CODE_VERSION + 1)
    assert CFG.id != before and CFG.id.startswith("fer2013-resnet18-cpu-")


def test_the_recipe_defaults_to_the_profiles() -> None:
    assert RunConfig(dataset="fer2013", profile="cpu").recipe == "scratch"
    assert RunConfig(dataset="fer2013", profile="paper").recipe == "paper"
    assert RunConfig(dataset="fer2013", profile="cpu") == RunConfig(dataset="fer2013", profile="cpu", recipe="scratch")


def test_a_record_names_the_cpu_instruction_set_one_model_name_hides() -> None:
    import torch

    from fer_lib.engine.records import machine, run_hardware

    assert machine()["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    env = {"device": "cpu", "cpu": "AMD EPYC", "cpu_count": 2, "torch_threads": 2}
    assert run_hardware(env) == "CPU AMD EPYC, 2 cores, 2 torch threads"  # records made before the field
    assert run_hardware({**env, "cpu_capability": "AVX512"}) == "CPU AMD EPYC (AVX512), 2 cores, 2 torch threads"


def committed_records_of_this_code() -> list[dict]:
    """The config.json of every committed run record trained by the current training code."""
    records = [json.loads(p.read_text()) for p in Path(__file__).parents[1].glob("results/runs/*/config.json")]
    return [r for r in records if r.get("code") == config_module.TRAINING_CODE_VERSION]


def test_committed_records_of_this_training_code_keep_their_ids() -> None:
    """A plan field added later (grad_clip) is left out of a plan's dict at its default, so the plans stored
    before it read back to the same dict and hash to the same id."""
    from fer_lib.engine.recipes import Plan

    current = committed_records_of_this_code()
    assert current, "no committed record of the current training code to check"
    names = {f.name for f in dataclasses.fields(Plan)}
    for record in current:
        stored = record["plan"]
        plan = Plan(**{"grad_clip": None, **stored, "notes": tuple(stored["notes"])})
        assert set(stored) <= names and plan.to_dict() == stored
        assert config_module.run_id(record["config"], plan.to_dict(), record["code"]) == record["id"]


def test_a_records_notes_are_still_what_its_plan_resolves_to() -> None:
    """A plan's notes are hashed into its run id: a reworded note would silently give every committed run of
    that plan a new id (and the study would train them again). Where today's code resolves a committed
    record's config (one without overrides, whose notes then come from its recipe and profile alone) to the
    same plan values, the notes must read the same too."""
    checked = 0
    for record in committed_records_of_this_code():
        if record["config"]["overrides"]:
            continue
        stored, config = record["plan"], RunConfig.from_dict(record["config"])
        resolved = config.plan.to_dict()
        if {k: v for k, v in resolved.items() if k != "notes"} == {k: v for k, v in stored.items() if k != "notes"}:
            assert resolved["notes"] == stored["notes"], f"{record['id']}: a note was reworded; keep the stored text"
            assert config.id == record["id"]
            checked += 1
    assert checked, "no committed record of today's plans to check"


def test_gradient_clipping_is_a_setting_that_changes_the_id() -> None:
    plain = RunConfig(dataset="fer2013", profile="paper")
    assert "grad_clip" not in plain.plan.to_dict() and plain.plan.grad_clip is None
    clipped = RunConfig(dataset="fer2013", profile="paper", overrides={"grad_clip": 5.0})
    assert clipped.plan.grad_clip == 5.0 and clipped.plan.to_dict()["grad_clip"] == 5.0 and clipped.id != plain.id
    cpu = RunConfig(dataset="fer2013", profile="cpu")  # the cpu profile clips; an override can switch it off
    assert cpu.plan.grad_clip == 5.0 and any("clipped at global norm 5" in n for n in cpu.plan.notes)
    unclipped = RunConfig(dataset="fer2013", profile="cpu", overrides={"grad_clip": None})
    assert unclipped.plan.grad_clip is None and len({unclipped.id, cpu.id}) == 2
    for recipe in ("dan", "paper"):  # a published recipe is trained as published, at any profile
        assert RunConfig(dataset="fer2013", profile="cpu", recipe=recipe).plan.grad_clip is None
    for bad in (0, -1.0, True, "5"):
        with pytest.raises(ConfigError, match="grad_clip must be a positive number"):
            RunConfig(dataset="fer2013", profile="cpu", overrides={"grad_clip": bad}).plan
