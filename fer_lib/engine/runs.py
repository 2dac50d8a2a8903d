"""Runs: a config checked, found in the record store or trained once, and its model loaded.

The record store itself (paths, atomic files, :class:`RunRecord`) is :mod:`fer_lib.engine.records`.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from fer_lib.engine.config import RunConfig
from fer_lib.engine.recipes import ConfigError
from fer_lib.engine.records import (
    CHECKPOINTS,
    RESULTS_ENV,
    RunRecord,
    atomic_write_json,
    history_lines,
    load_checkpoint,
    load_record,
    read_json,
    runs_dir,
)
from fer_lib.models import InputSpec, available_models, build_model


class _Lock:
    """An exclusive lock on a run (a file in its ignored checkpoint folder): one trainer per run."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / CHECKPOINTS / ".lock"

    def __enter__(self) -> "_Lock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a")
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def validate(cfg: RunConfig) -> None:
    """Raise ConfigError for an unknown dataset, model, recipe, profile or override (no data is loaded)."""
    from fer_lib.engine.inputs import known_datasets

    _ = cfg.plan  # recipe, profile, overrides
    datasets = known_datasets()
    if cfg.dataset not in datasets:
        raise ConfigError(f"unknown dataset {cfg.dataset!r}; choose one of {datasets}")
    models = available_models()
    if cfg.model not in models:
        raise ConfigError(f"unknown model {cfg.model!r}; choose one of {models}")


def current_fingerprint(dataset: str, options: dict[str, Any]) -> tuple[str, int]:
    """(fingerprint, training faces) of the data at hand for a plan's dataset and loader options."""
    from fer_lib.engine.inputs import load_data

    data, _ = load_data(dataset, **options)
    return data.fingerprint, int(len(data.indices("train")))


def check_data(record: RunRecord) -> None:
    """Raise ConfigError unless ``record`` was trained on the data at hand (same fingerprint)."""
    fingerprint, n_train = current_fingerprint(record.plan["dataset"], record.plan.get("data_options", {}))
    stored = record.data.get("fingerprint")
    if stored != fingerprint:
        made = f"data fingerprint {stored}" if stored else "no data fingerprint (made before they were recorded)"
        raise ConfigError(
            f"{record.dir} was trained on other data ({made}, {record.data.get('n_train')} training faces from "
            f"{record.data.get('source')}) than the data at hand ({fingerprint}, {n_train} training faces): it is not "
            f"reused. Move that folder away to train on this data, or set ${RESULTS_ENV} to a results folder for it"
        )


def get_run(
    cfg: RunConfig,
    train: bool = True,
    root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> RunRecord | None:
    """The finished run of ``cfg``: read from its record if it exists, else trained now (``train=True``,
    resuming from its last checkpoint) or None (``train=False``). Bad configs raise ConfigError first;
    so does a record trained on other data than the data at hand (see :func:`check_data`).

    Under ``torchrun --nproc_per_node N`` every process calls this; they train together with DDP
    and rank 0 writes the record. A folder this call creates is removed again if training fails
    before its config.json is written (a rejected config leaves no empty run folder).
    """
    validate(cfg)
    run_dir = runs_dir(root) / cfg.id
    record = load_record(run_dir)
    if record is not None:
        if record.config != cfg:
            raise RuntimeError(f"{run_dir} holds a different config than {cfg}: hash collision or edited record")
        check_data(record)
        return record
    # with last.pt there, training resumes and finishes the record itself
    if not (run_dir / CHECKPOINTS / "last.pt").exists() and len(history_lines(run_dir)) >= cfg.plan.epochs:
        raise ConfigError(
            f"{run_dir / 'metrics.json'} is missing, but {run_dir / 'history.jsonl'} holds all {cfg.plan.epochs} epochs: the run finished. "
            f"Restore metrics.json (e.g. `git checkout -- {run_dir / 'metrics.json'}`, or from a backup); "
            "it is not retrained over its history (move the folder away to train it again)"
        )
    if not train:
        return None
    import shutil

    from fer_lib.engine import distributed as D
    from fer_lib.engine.train import train_run

    ctx = D.setup(device)
    created = ctx.is_main and not run_dir.exists()
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    lock = _Lock(run_dir) if ctx.is_main else _NoLock()
    try:
        with lock:  # another process may be training the same run: wait for it, then reuse its record
            done = D.broadcast_object(ctx, load_record(run_dir) is not None if ctx.is_main else None)
            if not done:
                train_run(cfg, run_dir, ctx, progress=progress)
    except BaseException:
        if created and not (run_dir / "config.json").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    D.barrier(ctx)
    return load_record(run_dir)


class _NoLock:
    def __enter__(self) -> "_NoLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def get_runs(cfg: RunConfig, seeds: Iterable[int], **kwargs: Any) -> list[RunRecord | None]:
    """``get_run`` for the same config with each seed (pair with ``aggregate_seeds``)."""
    return [get_run(replace(cfg, seed=s), **kwargs) for s in seeds]


def load_model(run: RunRecord, which: str = "best_val", device: str | torch.device = "cpu") -> tuple[nn.Module, InputSpec]:
    """The run's model in eval mode from ``checkpoints/<which>.pt`` (``best_val``, falling back to
    ``last`` when the dataset has no validation split), and its InputSpec."""
    path = run.checkpoint(which)
    if which == "best_val" and not path.exists() and not run.metrics.get("best_val"):
        path = run.checkpoint("last")
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing (checkpoints are not committed): rebuild them with "
            f"fer_lib.engine.rebuild_weights(run), which retrains the run and checks it ends with the recorded metrics"
        )
    model = build_model(run.config.model, run.num_classes, image_size=run.plan["image_size"], **run.config.model_options)
    state = load_checkpoint(path, run.id)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), model.input_spec


def rebuild_weights(run: RunRecord, device: str | torch.device | None = None, strict: bool = True, progress: bool | None = None) -> dict[str, Any]:
    """Retrain a finished run whose checkpoints are missing (a fresh clone) and install them.

    The record is left untouched. With ``strict`` the checkpoints are installed only if the
    retrained run ends with the recorded metrics (true on CPU with the same thread count); else
    they are installed and the differences written to ``checkpoints/rebuilt.json``. Returns that report.
    """
    import shutil

    from fer_lib.engine import distributed as D
    from fer_lib.engine.train import train_run

    scratch = run.dir.parent / f".rebuild-{run.id}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        train_run(run.config, scratch, D.setup(device), progress=progress)
        again = read_json(scratch / "metrics.json")
        keys = ("last", "best_val", "best_test")
        same = {k: again.get(k) == run.metrics.get(k) for k in keys}
        retrained = {k: {"epoch": again[k].get("epoch"), "val": (again[k].get("val") or {}).get("accuracy"),
                         "test": (again[k].get("test") or {}).get("accuracy")} for k in keys if again.get(k)}
        report = {"same_metrics": all(same.values()), "per_selection": same, "retrained": retrained,
                  "rebuilt_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if strict and not report["same_metrics"]:
            raise RuntimeError(f"retrained {run.id} does not end with the recorded metrics ({same}); pass strict=False to install anyway")
        target = run.dir / CHECKPOINTS
        target.mkdir(parents=True, exist_ok=True)
        for name in ("last.pt", "best_val.pt"):
            if (scratch / CHECKPOINTS / name).exists():
                os.replace(scratch / CHECKPOINTS / name, target / name)
        atomic_write_json(target / "rebuilt.json", report)
        return report
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
