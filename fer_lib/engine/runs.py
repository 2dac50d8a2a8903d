"""Run records under ``results/runs/<id>/``: found again, trained once, never overwritten.

A record is ``config.json`` (config, resolved plan, data summary), ``history.jsonl`` (one line per
epoch), ``env.json`` (software and hardware, no host name) and, once the run has finished,
``metrics.json``. Checkpoints live in ``checkpoints/`` beside them, which git ignores.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from fer_lib import PROJECT_ROOT, RESULTS_DIR
from fer_lib.engine.config import RunConfig
from fer_lib.engine.recipes import ConfigError
from fer_lib.models import InputSpec, available_models, build_model

RESULTS_ENV = "FER_RESULTS"
CHECKPOINTS = "checkpoints"


def results_root(root: str | os.PathLike | None = None) -> Path:
    """The results folder: ``root`` if given, else $FER_RESULTS, else ``results/`` of the project."""
    if root is not None:
        return Path(root)
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    return RESULTS_DIR


def runs_dir(root: str | os.PathLike | None = None) -> Path:
    """Where run records live: ``<results root>/runs``."""
    return results_root(root) / "runs"


# ---------------------------------------------------------------- atomic files


def json_safe(obj: Any) -> Any:
    """Non-finite floats become None (strict JSON); containers are copied."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _atomic(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename: a kill leaves old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic(path, lambda fh: fh.write(text.encode()))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(json_safe(obj), indent=1, sort_keys=True, allow_nan=False) + "\n")


def atomic_save(obj: Any, path: Path) -> None:
    _atomic(path, lambda fh: torch.save(obj, fh))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------- environment


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _command() -> str:
    """The command line, with paths inside the project shown relative to it (no home or host names)."""
    root = str(PROJECT_ROOT)
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "__main__.py":  # python -m <package>
        argv[0] = "-m " + Path(argv[0]).parent.name
    args = [Path(sys.executable).name] + [a.replace(root + os.sep, "").replace(root, ".") for a in argv]
    return " ".join(args)


def environment(ctx: Any, plan: Any) -> dict[str, Any]:
    """Software and hardware of this run, without the host name."""
    import numpy
    import torchvision

    cuda = ctx.device.type == "cuda"
    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(ctx.device) if cuda else "cpu",
        "cuda": torch.version.cuda if cuda else None,
        "world_size": ctx.world,
        "backend": ctx.backend,
        "command": _command(),
        "git_commit": _git_commit(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# ---------------------------------------------------------------- records


@dataclass
class RunRecord:
    """A finished run as stored: ``metrics`` = {"last", "best_val", "best_test"} blocks of
    {"epoch", "selected_by", "val": M, "test": M}, M = accuracy, balanced_accuracy, per_class_recall, confusion."""

    id: str
    dir: Path
    config: RunConfig
    plan: dict[str, Any]
    data: dict[str, Any]
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    env: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return list(self.data["classes"])

    @property
    def num_classes(self) -> int:
        return len(self.data["classes"])

    def checkpoint(self, which: str = "best_val") -> Path:
        """Path of ``checkpoints/<which>.pt`` (``best_val`` or ``last``); may be absent in a fresh clone."""
        return self.dir / CHECKPOINTS / f"{which}.pt"

    def caption(self) -> str:
        """One line for a figure: dataset, model, profile and its reductions, seed."""
        notes = "; ".join(self.plan.get("notes", [])) or "as in the paper"
        synth = " (SYNTHETIC data)" if self.data.get("synthetic") else ""
        rebuilt = self.dir / CHECKPOINTS / "rebuilt.json"
        if rebuilt.exists() and not read_json(rebuilt).get("same_metrics", True):
            notes += "; weights retrained here (checkpoints not committed), their metrics differ slightly from the record"
        return f"{self.config.dataset}{synth}, {self.config.model}, recipe {self.config.recipe}, profile {self.config.profile}, seed {self.config.seed}: {notes}"


def load_record(run_dir: Path) -> RunRecord | None:
    """The finished record in ``run_dir``, or None if it is missing or unfinished."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").exists():
        return None
    meta = read_json(run_dir / "config.json")
    history_file = run_dir / "history.jsonl"
    history = [json.loads(line) for line in history_file.read_text().splitlines() if line.strip()] if history_file.exists() else []
    env_file = run_dir / "env.json"
    return RunRecord(
        id=meta["id"],
        dir=run_dir,
        config=RunConfig.from_dict(meta["config"]),
        plan=meta["plan"],
        data=meta["data"],
        history=history,
        metrics=read_json(run_dir / "metrics.json"),
        env=read_json(env_file) if env_file.exists() else {},
    )


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
    and rank 0 writes the record.
    """
    validate(cfg)
    run_dir = runs_dir(root) / cfg.id
    record = load_record(run_dir)
    if record is not None:
        if record.config != cfg:
            raise RuntimeError(f"{run_dir} holds a different config than {cfg}: hash collision or edited record")
        check_data(record)
        return record
    if not train:
        return None
    from fer_lib.engine import distributed as D
    from fer_lib.engine.train import train_run

    ctx = D.setup(device)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    lock = _Lock(run_dir) if ctx.is_main else _NoLock()
    with lock:  # another process may be training the same run: wait for it, then reuse its record
        done = D.broadcast_object(ctx, load_record(run_dir) is not None if ctx.is_main else None)
        if not done:
            train_run(cfg, run_dir, ctx, progress=progress)
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


def list_runs(root: str | os.PathLike | None = None, **match: Any) -> Iterator[RunRecord]:
    """Finished runs whose config fields equal ``match`` (e.g. ``dataset="fer2013", profile="cpu"``)."""
    base = runs_dir(root)
    if not base.exists():
        return
    for run_dir in sorted(base.iterdir()):
        record = load_record(run_dir) if run_dir.is_dir() else None
        if record is not None and all(getattr(record.config, k) == v for k, v in match.items()):
            yield record


def load_checkpoint(path: Path, run_id: str) -> dict[str, Any]:
    """A run's checkpoint, read with ``weights_only=True`` (a crafted pickle cannot run code); refused
    when it names another run."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(f"{path} is not a loadable checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                          "delete it and rebuild it with fer_lib.engine.rebuild_weights(run)") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ConfigError(f"{path} holds no model weights; delete it and rebuild it with fer_lib.engine.rebuild_weights(run)")
    if state.get("id", run_id) != run_id:
        raise ConfigError(f"{path} belongs to run {state.get('id')!r}, not {run_id}: refusing to load it")
    return state


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
