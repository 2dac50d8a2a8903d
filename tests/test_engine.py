"""Engine: config ids, recipes, records, caching, evaluation, bad configs, in-process resume."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from fer_lib.engine import (
    ConfigError,
    RunConfig,
    aggregate_seeds,
    classification_metrics,
    get_run,
    list_runs,
    load_model,
    predict,
    rebuild_weights,
)
from fer_lib.engine import distributed as D
from fer_lib.engine.evaluate import select_epochs
from fer_lib.engine import optimization
from fer_lib.engine.optimization import is_fused, make_optimizer
from fer_lib.engine.inputs import load_data
from fer_lib.engine.precision import resolve_precision
from fer_lib.engine.recipes import resolve_plan
from fer_lib.engine.runs import runs_dir
from fer_lib.engine.train import train_run

# The smallest real run: ResNet18 on the built-in synthetic faces, 48 px, 2 epochs.
SMOKE = RunConfig(dataset="fer2013", model="resnet18", profile="smoke", seed=0)
SELECTIONS = ("last", "best_val", "best_test")


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory: pytest.TempPathFactory):
    """One smoke run shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("results")
    run = get_run(SMOKE, root=root, progress=False)
    return root, run


def test_id_is_stable_and_readable() -> None:
    a = RunConfig(dataset="fer2013", model="daf_mhsca", model_options={"num_heads": 4, "use_afc": True}, profile="cpu")
    b = RunConfig(dataset="fer2013", model="daf_mhsca", model_options={"use_afc": True, "num_heads": 4}, profile="cpu")
    assert a.id == b.id and a == b and hash(a) == hash(b)
    assert a.id.startswith("fer2013-daf_mhsca-cpu-") and len(a.id.rsplit("-", 1)[1]) == 10


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 1},
        {"model_options": {"num_heads": 8}},
        {"loss_options": {"theta": 0.5}},
        {"recipe": "ours"},
        {"profile": "paper"},
        {"image_size": 96},
        {"overrides": {"epochs": 3}},
        {"dataset": "ferplus"},
    ],
)
def test_changed_config_is_a_new_id(change: dict) -> None:
    base = RunConfig(dataset="fer2013", model="daf_mhsca", profile="cpu")
    assert dataclasses.replace(base, **change).id != base.id


def test_options_are_copied_and_json_only() -> None:
    opts = {"num_heads": 4}
    cfg = RunConfig(dataset="fer2013", model_options=opts)
    before = cfg.id
    opts["num_heads"] = 8
    assert cfg.id == before
    with pytest.raises(ConfigError, match="not JSON"):
        RunConfig(dataset="fer2013", model_options={"x": object()})
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_paper_recipe_is_table2() -> None:
    fer = RunConfig(dataset="fer2013", profile="paper").plan
    assert (fer.optimizer, fer.lr, fer.batch_size, fer.epochs, fer.image_size, fer.schedule) == ("adam", 1e-4, 256, 40, 224, "none")
    assert fer.notes == ()
    ferplus = RunConfig(dataset="ferplus", profile="paper").plan
    assert (ferplus.lr, ferplus.batch_size) == (1e-4, 64)
    raf = RunConfig(dataset="rafdb", profile="paper").plan
    assert (raf.lr, raf.batch_size) == (0.1, 256)
    ours = RunConfig(dataset="rafdb", profile="paper", recipe="ours").plan
    assert ours.lr == 1e-4 and any("ours" in n for n in ours.notes)
    for name in ("affectnet7", "affectnet8"):
        plan = RunConfig(dataset=name, profile="paper").plan
        assert (plan.lr, plan.batch_size, plan.epochs) == (1e-4, 256, 40)


def test_profiles_scale_and_say_so() -> None:
    from fer_lib.engine import PROFILES

    assert PROFILES["demo"].describe().endswith("here with batch at most 64, no augmentation")  # what its runs train with
    assert PROFILES["cpu"].describe().endswith("here with gradients clipped at norm 5")  # what its runs train with
    cpu = RunConfig(dataset="ferplus", profile="cpu").plan
    assert (cpu.recipe, cpu.optimizer, cpu.lr, cpu.batch_size, cpu.schedule, cpu.grad_clip) == ("scratch", "adamw", 5e-4, 128, "cosine", 5.0)
    assert cpu.image_size < 224 and cpu.epochs < 40 and cpu.train_subset is None  # the full training split
    assert any("image size" in n for n in cpu.notes) and any("epochs" in n for n in cpu.notes)
    assert any("recipe scratch" in n for n in cpu.notes)
    table2 = RunConfig(dataset="ferplus", profile="cpu", recipe="paper").plan  # Table 2 stays selectable
    assert (table2.optimizer, table2.lr, table2.batch_size, table2.schedule) == ("adam", 1e-4, 64, "none")
    smoke = RunConfig(dataset="ferplus", profile="smoke").plan
    assert smoke.dataset == "synthetic" and smoke.data_options["num_classes"] == 8
    assert any("synthetic" in n for n in smoke.notes)
    over = RunConfig(dataset="fer2013", profile="paper", overrides={"epochs": 3}).plan
    assert over.epochs == 3 and any("override epochs" in n for n in over.notes)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dataset": "nosuchset"}, "unknown dataset"),
        ({"dataset": "fer2013", "model": "nosuchnet"}, "unknown model"),
        ({"dataset": "fer2013", "recipe": "nosuchrecipe"}, "unknown recipe"),
        ({"dataset": "fer2013", "profile": "nosuchprofile"}, "unknown profile"),
        ({"dataset": "fer2013", "overrides": {"lr_typo": 1}}, "unknown override"),
        ({"dataset": "fer2013", "overrides": {"optimizer": "rmsprop"}}, "unknown optimizer"),
    ],
)
def test_bad_config_fails_with_a_clear_message(tmp_path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        get_run(RunConfig(**{"model": "resnet18", **kwargs}), root=tmp_path)
    assert not runs_dir(tmp_path).exists()


def test_batch_larger_than_split_fails_before_training(tmp_path) -> None:
    cfg = dataclasses.replace(SMOKE, overrides={"batch_size": 100_000})
    with pytest.raises(ConfigError, match="larger than the training split"):
        get_run(cfg, root=tmp_path)
    assert not (runs_dir(tmp_path) / cfg.id / "history.jsonl").exists()
    assert not (runs_dir(tmp_path) / cfg.id / "checkpoints" / "last.pt").exists()


def test_bad_model_option_fails_before_training(tmp_path) -> None:
    with pytest.raises(ConfigError, match="rejects model_options"):
        get_run(dataclasses.replace(SMOKE, model_options={"no_such_switch": 1}), root=tmp_path)


def test_record_files_and_contents(smoke_root) -> None:
    root, run = smoke_root
    assert run.dir == runs_dir(root) / SMOKE.id
    for name in ("config.json", "history.jsonl", "metrics.json", "env.json"):
        assert (run.dir / name).is_file()
    assert run.config == SMOKE and run.data["synthetic"] and run.num_classes == 7
    assert len(run.history) == 2
    row = run.history[-1]
    for key in ("epoch", "loss", "loss_ce", "train_accuracy", "val_accuracy", "test_accuracy", "lr", "seconds", "images_per_s"):
        assert key in row
    for selection in SELECTIONS:
        block = run.metrics[selection]
        for split in ("val", "test"):
            m = block[split]
            assert set(m) >= {"accuracy", "balanced_accuracy", "per_class_recall", "confusion"}
            assert len(m["per_class_recall"]) == 7 and np.array(m["confusion"]).shape == (7, 7)
            assert np.array(m["confusion"]).sum() == m["n"]
    assert run.metrics["best_test"]["test"]["accuracy"] >= run.metrics["last"]["test"]["accuracy"]
    assert run.env["torch"] == torch.__version__ and run.env["device"] == "cpu"
    assert run.env["optimizer_fused"] is True
    assert "SYNTHETIC" in run.caption()
    text = (run.dir / "env.json").read_text()
    import socket

    assert socket.gethostname() not in text


def test_cached_run_is_returned_not_retrained(smoke_root, monkeypatch) -> None:
    root, run = smoke_root
    stamp = (run.dir / "metrics.json").stat().st_mtime_ns

    def boom(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("fer_lib.engine.train.train_run", boom)
    again = get_run(SMOKE, root=root)
    assert again.id == run.id and again.metrics == run.metrics
    assert (run.dir / "metrics.json").stat().st_mtime_ns == stamp
    assert get_run(dataclasses.replace(SMOKE, seed=5), train=False, root=root) is None
    assert [r.id for r in list_runs(root, model="resnet18")] == [run.id]


def test_same_seed_same_metrics(smoke_root, tmp_path) -> None:
    _, run = smoke_root
    again = get_run(SMOKE, root=tmp_path, progress=False)
    for selection in SELECTIONS:
        assert again.metrics[selection] == run.metrics[selection]


def test_load_model_and_predict(smoke_root) -> None:
    _, run = smoke_root
    model, spec = load_model(run)
    assert not model.training and spec.size == 48
    data, _ = load_data(run.plan["dataset"], **run.plan["data_options"])
    pred = predict(model, data, "test")
    assert pred["logits"].shape == (len(data.indices("test")), 7)
    assert pred["features"].shape[0] == pred["labels"].shape[0] and pred["head_maps"] is None
    acc = float((pred["logits"].argmax(1) == pred["labels"]).mean())
    assert acc == pytest.approx(run.metrics["best_val"]["test"]["accuracy"])
    assert predict(model, data, "val", max_samples=5)["logits"].shape == (5, 7)


def test_resume_after_interruption_ends_equal(smoke_root, tmp_path) -> None:
    _, run = smoke_root
    run_dir = runs_dir(tmp_path) / SMOKE.id
    train_run(SMOKE, run_dir, D.setup("cpu"), progress=False, stop_after_epochs=1)
    assert not (run_dir / "metrics.json").exists() and len((run_dir / "history.jsonl").read_text().splitlines()) == 1
    resumed = get_run(SMOKE, root=tmp_path, progress=False)
    assert resumed.env["resumed_after_epochs"] == [1]
    for selection in SELECTIONS:
        assert resumed.metrics[selection] == run.metrics[selection]


def test_lost_checkpoint_restarts_from_epoch_0_and_says_so(smoke_root, tmp_path, capsys) -> None:
    """A half-trained run copied without its ignored checkpoints starts again, visibly, and ends as an uninterrupted run."""
    _, run = smoke_root
    run_dir = runs_dir(tmp_path) / SMOKE.id
    train_run(SMOKE, run_dir, D.setup("cpu"), progress=False, stop_after_epochs=1)
    (run_dir / "checkpoints" / "last.pt").unlink()
    capsys.readouterr()
    restarted = get_run(SMOKE, root=tmp_path, progress=False)
    assert "history.jsonl holds 1 epoch(s) but" in capsys.readouterr().out
    assert restarted.env["restarted_losing_epochs"] == [1] and restarted.env["resumed_after_epochs"] == []
    assert len(restarted.history) == SMOKE.plan.epochs
    for selection in SELECTIONS:
        assert restarted.metrics[selection] == run.metrics[selection]


def test_resume_in_another_precision_is_refused(tmp_path, monkeypatch) -> None:
    """precision "auto" resolves per machine: a run started in bf16 must not go on in fp32 unseen (or the reverse)."""
    run_dir = runs_dir(tmp_path) / SMOKE.id
    train_run(SMOKE, run_dir, D.setup("cpu"), progress=False, stop_after_epochs=1)
    env = json.loads((run_dir / "env.json").read_text())
    here = resolve_precision(SMOKE.plan.precision, torch.device("cpu"))[0]
    assert env["precision"] == here
    env["precision"] = "bf16" if here == "fp32" else "fp32"
    (run_dir / "env.json").write_text(json.dumps(env))
    with pytest.raises(ConfigError, match=f"was trained in {env['precision']} up to its last checkpoint, and would resume in {here}"
                                          rf".*\$FER_AUTO_PRECISION={env['precision']}"):
        get_run(SMOKE, root=tmp_path, progress=False)
    monkeypatch.setenv("FER_AUTO_PRECISION", env["precision"])  # the hint the message gives: it resumes
    assert get_run(SMOKE, root=tmp_path, progress=False).env["precision"] == env["precision"]


def test_rebuild_missing_checkpoints(smoke_root, tmp_path) -> None:
    """A fresh clone has the record but not its weights: retraining installs them and says whether the metrics matched."""
    import shutil

    _, run = smoke_root
    copy = runs_dir(tmp_path) / run.id
    shutil.copytree(run.dir, copy, ignore=shutil.ignore_patterns("checkpoints"))
    record = get_run(SMOKE, root=tmp_path, train=False)
    with pytest.raises(FileNotFoundError):
        load_model(record)
    report = rebuild_weights(record, progress=False)
    assert report["same_metrics"] and report["retrained"]["best_val"]["test"] == run.metrics["best_val"]["test"]["accuracy"]
    assert load_model(record)[0] is not None and "retrained" not in record.caption()
    (copy / "checkpoints" / "rebuilt.json").write_text(json.dumps({**report, "same_metrics": False}))
    assert "weights retrained here" in record.caption()  # figures drawn from such weights say so


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_fused_optimizer_makes_the_for_loop_update(optimizer: str, monkeypatch) -> None:
    plan = dataclasses.replace(resolve_plan("synthetic", "scratch", "smoke"), optimizer=optimizer, weight_decay=0.05, momentum=0.9)
    runs = []
    for fused in (True, False):
        if not fused:  # torch's for-loop implementation of the same optimiser and groups
            monkeypatch.setattr(optimization, "FUSED_DEVICES", ())
        torch.manual_seed(0)
        model, criterion = torch.nn.Linear(6, 3), torch.nn.Linear(3, 1)
        opt = make_optimizer(plan, model, criterion)
        assert is_fused(opt) == fused
        for step in range(5):
            opt.zero_grad()
            (model(torch.full((4, 6), step + 1.0)).square().mean() + criterion.weight.sum()).backward()
            opt.step()
        runs.append(torch.cat([p.detach().flatten() for p in (*model.parameters(), *criterion.parameters())]))
    torch.manual_seed(0)
    start = torch.cat([p.detach().flatten() for p in (*torch.nn.Linear(6, 3).parameters(), *torch.nn.Linear(3, 1).parameters())])
    assert (runs[0] - start).abs().max() > 1e-3  # it moved
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-5, atol=1e-6)
    monkeypatch.undo()
    resumed = make_optimizer(plan, model, criterion)
    resumed.load_state_dict(opt.state_dict())  # a checkpoint saved by the for-loop implementation
    assert not is_fused(resumed)  # keeps it, and env.json says so


def test_metrics_and_selection() -> None:
    m = classification_metrics(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), 3)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["per_class_recall"] == [0.5, 1.0, 0.0]
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    rows = [
        {"epoch": 1, "val": {"accuracy": 0.5}, "test": {"accuracy": 0.7}},
        {"epoch": 2, "val": {"accuracy": 0.6}, "test": {"accuracy": 0.6}},
        {"epoch": 3, "val": {"accuracy": 0.6}, "test": {"accuracy": 0.5}},
    ]
    sel = select_epochs(rows)
    assert (sel["last"]["epoch"], sel["best_val"]["epoch"], sel["best_test"]["epoch"]) == (3, 2, 1)
    assert "test split" in sel["best_test"]["selected_by"]


def test_aggregate_seeds() -> None:
    @dataclasses.dataclass
    class Fake:
        config: RunConfig
        metrics: dict
        id: str = "x"

    def block(acc: float) -> dict:
        m = {"accuracy": acc, "balanced_accuracy": acc / 2}
        return {"epoch": 1, "val": m, "test": m}

    runs = [Fake(dataclasses.replace(SMOKE, seed=s), {k: block(a) for k in SELECTIONS}) for s, a in [(0, 0.5), (1, 0.7)]]
    agg = aggregate_seeds(runs)
    assert agg["seeds"] == [0, 1]
    assert agg["best_val/test/accuracy"]["mean"] == pytest.approx(0.6)
    assert agg["best_val/test/accuracy"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    with pytest.raises(ValueError, match="more than the seed"):
        aggregate_seeds([runs[0], Fake(dataclasses.replace(SMOKE, model="daf_mhsca"), runs[0].metrics)])


def test_config_json_round_trip(smoke_root) -> None:
    _, run = smoke_root
    meta = json.loads((run.dir / "config.json").read_text())
    assert meta["id"] == run.id and RunConfig.from_dict(meta["config"]).id == run.id
    assert meta["plan"]["notes"] and meta["data"]["train_class_counts"]


def test_auto_precision_can_be_pinned_and_says_so(monkeypatch) -> None:
    """$FER_AUTO_PRECISION keeps a study in one precision across machines; explicit settings ignore it."""
    cpu = torch.device("cpu")
    monkeypatch.setenv("FER_AUTO_PRECISION", "fp32")
    assert resolve_precision("auto", cpu) == ("fp32", "precision auto: $FER_AUTO_PRECISION=fp32")
    monkeypatch.setenv("FER_AUTO_PRECISION", "bf16")
    assert resolve_precision("auto", cpu)[0] == "bf16" and "FER_AUTO_PRECISION=bf16" in resolve_precision("auto", cpu)[1]
    assert resolve_precision("fp32", cpu) == ("fp32", None)
    monkeypatch.setenv("FER_AUTO_PRECISION", "fp16")
    with pytest.raises(ConfigError, match="must be fp32 or bf16"):
        resolve_precision("auto", cpu)


def test_gradient_clipping_bounds_each_step_and_records_the_norms(tmp_path, monkeypatch) -> None:
    """With grad_clip the optimiser sees gradients of norm at most grad_clip; each epoch records the norms before."""
    seen: list[float] = []
    step = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    cfg = dataclasses.replace(SMOKE, recipe="scratch", overrides={"grad_clip": 1e-3})
    run = get_run(cfg, root=tmp_path, progress=False)
    assert seen and max(seen) <= 1e-3 * (1 + 1e-4)
    for row in run.history:
        assert row["clipped_fraction"] == 1.0 and row["norm_before_clip_max"] >= row["norm_before_clip_mean"] > 1e-3


def test_largest_drop_is_the_worst_fall_of_training_accuracy_between_epochs() -> None:
    from fer_lib.engine.evaluate import largest_drop

    assert largest_drop([{"train_accuracy": a} for a in (0.30, 0.40, 0.45)]) == 0.0  # never fell
    assert largest_drop([{"train_accuracy": a} for a in (0.37, 0.54, 0.47, 0.36, 0.37)]) == pytest.approx(11.0)
    assert largest_drop([]) == 0.0
    stalled = [{"train_accuracy": t, "val_accuracy": v} for t, v in ((0.28, 0.38), (0.33, 0.32), (0.34, 0.37))]
    assert largest_drop(stalled) == 0.0 and largest_drop(stalled, "val_accuracy") == pytest.approx(6.0)
