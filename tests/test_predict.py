"""``python -m fer_lib predict``: a real photo (scikit-image's astronaut), the outputs, and every error case."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from fer_lib.cli import main
from fer_lib.engine import RunConfig
from fer_lib.models import build_model


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    out = {"astronaut": d / "astronaut.png", "blank": d / "blank.png", "broken": d / "broken.jpg"}
    cv2.imwrite(str(out["astronaut"]), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(out["blank"]), np.full((120, 160, 3), 128, np.uint8))
    out["broken"].write_text("not an image")
    return out


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An engine-style checkpoint of an untrained DAF-MHSCA (random weights are enough for the mechanics)."""
    path = tmp_path_factory.mktemp("weights") / "daf.pt"
    torch.save({"model": build_model("daf_mhsca", 7, image_size=48).state_dict(), "epoch": 0}, path)
    return path


def test_astronaut_one_face_and_outputs(photos: dict[str, Path], weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(["predict", str(photos["astronaut"]), "--weights", str(weights), "--image-size", "48", "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out / "predictions.csv")
    assert len(table) == 1  # exactly one face
    probs = table[[c for c in table.columns if c.startswith("p_")]].to_numpy()
    assert probs.shape == (1, 7) and probs.sum() == pytest.approx(1, abs=1e-5)
    assert table.loc[0, "predicted"] in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    x, y, w, h = table.loc[0, ["x", "y", "w", "h"]]
    assert 150 < x < 220 and 40 < y < 110 and 60 < w < 140  # her face, not the flag or the helmet
    doc = json.loads((out / "predictions.json").read_text())
    assert doc["photos"][0]["error"] is None and doc["photos"][0]["attention"] == "heads mean"
    overlay = cv2.imread(str(out / "astronaut_overlay.png"))
    assert overlay is not None and overlay.shape == (512, 512, 3)


def test_bad_files_do_not_stop_the_batch(photos: dict[str, Path], weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "missing.jpg"
    args = [str(photos["blank"]), str(photos["broken"]), str(missing), str(photos["astronaut"])]
    code = main(["predict", *args, "--weights", str(weights), "--image-size", "48", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0
    assert "blank.png: no face found" in err
    assert "broken.jpg: unreadable or truncated image (cannot identify image file" in err
    assert "missing.jpg: file not found" in err
    doc = json.loads((tmp_path / "predictions.json").read_text())
    assert [p["error"] is None for p in doc["photos"]] == [False, False, False, True]
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == 1


def test_every_photo_failing_exits_non_zero(photos: dict[str, Path], weights: Path, tmp_path: Path) -> None:
    code = main(["predict", str(photos["blank"]), str(photos["broken"]), "--weights", str(weights), "--image-size", "48", "--out", str(tmp_path)])
    assert code == 1
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == 0


def test_no_model_and_missing_weights(photos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", str(photos["astronaut"]), "--out", str(tmp_path)]) == 2
    assert "no model given: pass --run ID" in capsys.readouterr().err
    assert main(["predict", str(photos["astronaut"]), "--weights", str(tmp_path / "nope.pt"), "--out", str(tmp_path)]) == 2
    assert "weights file not found" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_text("junk")
    assert main(["predict", str(photos["astronaut"]), "--weights", str(tmp_path / "junk.pt"), "--out", str(tmp_path)]) == 2
    assert "junk.pt is not a torch checkpoint" in capsys.readouterr().err


def test_weights_that_do_not_fit(photos: dict[str, Path], weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["predict", str(photos["astronaut"]), "--weights", str(weights), "--dataset", "ferplus", "--image-size", "48", "--out", str(tmp_path)])
    assert code == 2
    assert "does not fit model 'daf_mhsca' with 8 classes" in capsys.readouterr().err


def _record(root: Path) -> tuple[RunConfig, Path]:
    """A finished run record written by hand in the engine's layout (no training needed)."""
    cfg = RunConfig(dataset="fer2013", model="daf_mhsca", profile="smoke", seed=0)
    run_dir = root / "runs" / cfg.id
    run_dir.mkdir(parents=True)
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    meta = {"id": cfg.id, "config": cfg.to_dict(), "plan": cfg.plan.to_dict(), "data": {"name": "synthetic", "classes": classes, "synthetic": True}}
    (run_dir / "config.json").write_text(json.dumps(meta))
    (run_dir / "metrics.json").write_text(json.dumps({"last": None, "best_val": None, "best_test": None}))
    return cfg, run_dir


def test_run_without_then_with_checkpoint(photos: dict[str, Path], weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    cfg, run_dir = _record(results)
    base = ["predict", str(photos["astronaut"]), "--results", str(results), "--out", str(tmp_path / "out")]
    assert main(base + ["--run", "no-such-run"]) == 2
    assert "no finished run 'no-such-run'" in capsys.readouterr().err
    assert main(base + ["--run", cfg.id]) == 2
    assert f"run {cfg.id} has no checkpoint" in capsys.readouterr().err
    (run_dir / "checkpoints").mkdir()
    torch.save(torch.load(weights), run_dir / "checkpoints" / "last.pt")
    assert main(base + ["--run", cfg.id]) == 0
    doc = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert doc["model"] == cfg.id and len(doc["photos"][0]["faces"]) == 1
    # the same checkpoint given as a file finds its run's settings by itself (no --image-size)
    assert main(["predict", str(photos["astronaut"]), "--weights", str(run_dir / "checkpoints" / "last.pt"), "--out", str(tmp_path / "o2")]) == 0
