"""The record store: run records under ``results/runs/<id>/``, written atomically, read back.

A record is ``config.json`` (config, resolved plan, data summary), ``history.jsonl`` (one line per
epoch), ``env.json`` (software and hardware, no host name) and, once the run has finished,
``metrics.json``. Checkpoints live in ``checkpoints/`` beside them, which git ignores. Finding,
training and loading runs is :mod:`fer_lib.engine.runs`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from fer_lib import PROJECT_ROOT, RESULTS_DIR
from fer_lib.engine.config import RunConfig
from fer_lib.engine.recipes import ConfigError

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


# ---------------------------------------------------------------- the machine


def cpu_name() -> str:
    """The CPU model ("model name" of /proc/cpuinfo, else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device | str = "cpu") -> dict[str, Any]:
    """The hardware and software numbers come from, without the host name."""
    device = torch.device(device)
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": cpu_name(),
        # one model name covers CPUs of several speeds ("AMD EPYC": AVX2-only and AVX-512 with bf16)
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def machine_line() -> str:
    """One line for a page: CPU model, core count and GPU (if any) of this machine, OS and torch."""
    m = machine()
    gpu = f", GPU {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}" if torch.cuda.is_available() else ""
    return f"{m['cpu']} ({m['cpu_count']} cores){gpu}; {m['os']}; torch {m['torch']}"


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
        **machine(ctx.device),
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
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


def history_lines(run_dir: Path) -> list[str]:
    """The epoch lines of ``run_dir/history.jsonl`` (none without the file)."""
    history_file = Path(run_dir) / "history.jsonl"
    return [line for line in history_file.read_text().splitlines() if line.strip()] if history_file.is_file() else []


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The epoch rows of ``run_dir/history.jsonl`` (none without the file)."""
    return [json.loads(line) for line in history_lines(run_dir)]


def load_record(run_dir: Path) -> RunRecord | None:
    """The finished record in ``run_dir``, or None if it is missing or unfinished."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").exists():
        return None
    meta = read_json(run_dir / "config.json")
    history = read_history(run_dir)
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


def run_hardware(env: dict[str, Any] | None) -> str:
    """The hardware of a run from its env.json: CPU model and cores with torch threads, or the GPU (x world size)."""
    env = env or {}
    device = env.get("device") or "?"
    world = f" x{env['world_size']}" if (env.get("world_size") or 1) > 1 else ""
    if device != "cpu":
        return f"GPU {device}{world}"
    cores = f", {env['cpu_count']} cores" if env.get("cpu_count") else ""
    threads = f", {env['torch_threads']} torch thread{'s' if env['torch_threads'] != 1 else ''}" if env.get("torch_threads") else ""
    capability = f" ({env['cpu_capability']})" if env.get("cpu_capability") else ""
    return f"CPU {env.get('cpu', '?')}{capability}{cores}{threads}{world}"
