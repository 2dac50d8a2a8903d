"""End-to-end engine runs in subprocesses: kill -9 then resume, and 2 processes under torchrun (gloo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fer_lib import PROJECT_ROOT

pytestmark = pytest.mark.slow

TRAIN = [sys.executable, "-m", "fer_lib", "train", "--model", "resnet18", "--profile", "smoke", "--device", "cpu", "--no-progress"]


def _env(results: Path, threads: int = 2) -> dict[str, str]:
    env = {**os.environ, "FER_RESULTS": str(results), "OMP_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _only_run(results: Path) -> Path:
    (run_dir,) = [p for p in (results / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")]
    return run_dir


def _scores(run_dir: Path) -> tuple[dict, list[dict]]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    timing = ("seconds", "eval_seconds", "images_per_s")
    return {k: metrics[k] for k in ("last", "best_val", "best_test")}, [{k: v for k, v in r.items() if k not in timing} for r in history]


def test_kill_9_then_resume_ends_like_an_uninterrupted_run(tmp_path: Path) -> None:
    args = TRAIN + ["--set", "epochs=3"]
    reference = tmp_path / "reference"
    subprocess.run(args, env=_env(reference), check=True, cwd=PROJECT_ROOT, capture_output=True, timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(args, env=_env(killed), cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    history = None
    while time.monotonic() < deadline and proc.poll() is None:
        runs = killed / "runs"
        found = [p / "history.jsonl" for p in runs.iterdir() if (p / "history.jsonl").exists()] if runs.exists() else []
        if found and found[0].read_text().count("\n") >= 1:
            history = found[0]
            break
        time.sleep(0.05)
    assert history is not None and proc.poll() is None, "the run ended before it could be killed"
    time.sleep(0.3)  # somewhere inside epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = history.parent
    assert not (run_dir / "metrics.json").exists()

    subprocess.run(args, env=_env(killed), check=True, cwd=PROJECT_ROOT, capture_output=True, timeout=300)
    env = json.loads((run_dir / "env.json").read_text())
    assert env["resumed_after_epochs"] and env["resumed_after_epochs"][0] >= 1
    assert _scores(run_dir) == _scores(_only_run(reference))


def test_two_gloo_processes_train_and_record_once(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "fer_lib", "train",
           "--model", "resnet18", "--profile", "smoke", "--device", "cpu", "--no-progress", "--set", "epochs=1"]
    out = subprocess.run(cmd, env=_env(tmp_path, threads=1), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = _only_run(tmp_path)
    env = json.loads((run_dir / "env.json").read_text())
    assert env["world_size"] == 2 and env["backend"] == "gloo"
    history = (run_dir / "history.jsonl").read_text().splitlines()
    assert len(history) == 1  # one line per epoch, written by rank 0 only
    row = json.loads(history[0])
    assert row["val"]["n"] == json.loads((run_dir / "config.json").read_text())["data"]["n_val"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 1 and metrics["last"]["test"]["accuracy"] is not None
    assert out.stdout.count(run_dir.name + "  (") == 1  # the summary is printed once
