"""The cpu study: every run the cpu report needs, trained most-informative first, resumable.

    .venv/bin/python scripts/cpu_study.py --list --threads 2  # the queue: each run's state, its estimate here
    nohup .venv/bin/python scripts/cpu_study.py --threads 1 > study-0.log 2>&1 &   # a worker
    nohup .venv/bin/python scripts/cpu_study.py --threads 1 > study-1.log 2>&1 &   # a second one
    .venv/bin/python scripts/cpu_study.py --threads 2 --hours 2.5   # one worker (AVX2-only CPUs); only runs that finish within 2.5 h
    .venv/bin/python scripts/cpu_study.py --threads 2 --auto-precision fp32   # every run in fp32, whatever its pair
    .venv/bin/python scripts/cpu_study.py --threads 2 --hours 2.5 --model ddamfn   # only DDAMFN's runs (the slowest)

The queue is the cpu report's own plan (``fer_lib.report.plan.planned_configs``), ordered so that the first
records answer the most: seed 0 of DAF-MHSCA and of its ResNet18 control on each dataset, their seeds 1-2
on FER2013, their seed 1 on FERPlus, then Table 4 on FER2013 row by row (seeds 0-1 of a row before the
next row: a verdict needs two paired seeds), then FERPlus's seed 2, DAN and DDAMFN, a seed of each Table 5
and Figure 8 row, the readings, and the rest. A worker takes the first run that is neither finished
nor being trained by another worker (each run has a lock), so several workers share one queue; a
killed worker's run resumes at its last epoch (on the machine that holds its ignored checkpoints; elsewhere it
starts again, and says so). On 2 Xeon cores with AMX two 1-thread workers train about
1.5x as many images per second as one 2-thread worker, on 2 AVX-512 EPYC cores about 1.2x; on 2 AVX2-only EPYC
cores no more than it, so run one 2-thread worker there (docs/cpu_study.md; ``scripts/bench_workers.py`` measures it). Records land in results/runs/<id>/,
with ``predictions.json`` (the test faces each run got right, for the report's paired intervals) written
from the run's checkpoints when it finishes; ``--predictions`` writes it for finished runs that lack it.
Precision (``--auto-precision paired``, the default): a run trains in the precision of the full model's record of
its dataset and seed, the run the ledger pairs it with, so that a paired difference does not mix precisions; the
full model itself, and a run whose partner is not recorded yet, in the machine's default (bf16 where the CPU has it).
Only a person commits: each finished run, and ``--list``, print the command that commits the records git
does not track yet (a cut session leaves them untracked).
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from fer_lib import paper  # noqa: E402
from fer_lib.data import load_dataset  # noqa: E402
from fer_lib.engine import ConfigError, get_run, runs_dir  # noqa: E402
from fer_lib.engine.precision import AUTO_ENV, resolve_precision  # noqa: E402
from fer_lib.engine.bench import timed_step  # noqa: E402
from fer_lib.engine.train import build_all  # noqa: E402
from fer_lib.engine.optimization import make_optimizer  # noqa: E402
from fer_lib.engine.predictions import PREDICTIONS, write_predictions  # noqa: E402
from fer_lib.engine.records import CHECKPOINTS, cpu_name, history_lines, load_record  # noqa: E402
from fer_lib.report.plan import SCOPES, planned_configs, without_reading  # noqa: E402

DATASETS = ("fer2013", "ferplus")


def role(cfg) -> tuple[str, int]:
    """What ``cfg`` is in the study: "full" (DAF-MHSCA), "control" (ResNet18), "removal" (a Table 4 row that
    removes one component) or "other"; and the removal's row index (0 otherwise)."""
    opts = without_reading(cfg.profile, cfg.model_options)
    if cfg.model != "daf_mhsca" or cfg.loss_options:
        return "other", 0
    if not opts:
        return "full", 0
    if opts == paper.CONTROL_OPTIONS:
        return "control", 0
    removals = list(paper.REMOVALS.values())
    return ("removal", removals.index(opts)) if opts in removals else ("other", 0)


def priority(cfg) -> tuple:
    """Sort key: lower trains first. A verdict needs two paired seeds, so the order buys verdicts early:
    FERPlus's seed 1 pair before Table 4, and each Table 4 row's seeds 0-1 before the next row."""
    kind, row = role(cfg)
    full, control, ablation = kind == "full", kind == "control", kind == "removal"
    ds = DATASETS.index(cfg.dataset) if cfg.dataset in DATASETS else len(DATASETS)
    if (full or control) and cfg.seed == 0:
        tier = 0  # the headline and its control, each dataset
    elif (full or control) and cfg.dataset == "fer2013":
        tier = 1  # their seeds 1-2 on FER2013
    elif (full or control) and cfg.seed == 1:
        tier = 2  # seed 1 on FERPlus: its first paired verdict
    elif ablation and cfg.dataset == "fer2013" and cfg.seed <= 1:
        tier = 3  # Table 4 on FER2013, seeds 0-1, row by row: each row's first verdict
    elif ablation and cfg.dataset == "fer2013":
        tier = 4  # Table 4 on FER2013, seed 2
    elif full or control:
        tier = 5  # seed 2 on FERPlus
    elif cfg.model != "daf_mhsca" and cfg.seed == 0:
        tier = 6  # DAN and DDAMFN
    elif cfg.seed == 0 and ("num_heads" in cfg.model_options or "theta" in cfg.loss_options):
        tier = 7  # Table 5 and Figure 8: a row each
    elif cfg.seed == 0 and not ablation:
        tier = 8  # the readings: passages read the other way
    else:
        tier = 9  # Table 4 on FERPlus, other baseline seeds
    return (tier, row, cfg.seed, ds, 0 if full else 1 if control else 2)


def queue() -> list:
    return sorted(planned_configs("cpu", list(DATASETS)), key=priority)


def partner(cfg, runs: list):
    """The full model of ``cfg``'s dataset and seed in ``runs``: the run the ledger pairs ``cfg`` with (Table 4's
    rows, the control, the sweeps and the baselines are all differences from it); None for that run itself."""
    if role(cfg)[0] == "full":
        return None
    return next((c for c in runs if role(c)[0] == "full" and (c.dataset, c.seed) == (cfg.dataset, cfg.seed)), None)


def paired_precision(cfg, runs: list) -> str | None:
    """The precision ``cfg``'s partner (:func:`partner`) trained in, from its record; None where ``cfg`` is the full
    model or its partner has no record yet (the machine's default then)."""
    full = partner(cfg, runs)
    record = load_record(runs_dir() / full.id) if full is not None else None
    return record.env.get("precision") if record is not None else None


def set_auto_precision(cfg, runs: list, choice: str) -> str:
    """Set ``$FER_AUTO_PRECISION`` for ``cfg`` (``choice``: fp32, bf16, or paired: :func:`paired_precision`, else
    the machine's default) and return the precision ``cfg`` will train in."""
    chosen = paired_precision(cfg, runs) if choice == "paired" else choice
    if chosen:
        os.environ[AUTO_ENV] = chosen
    else:
        os.environ.pop(AUTO_ENV, None)
    return resolve_precision(cfg.plan.precision, torch.device("cpu"))[0]


def claim(cfg) -> bool:
    """True when no other worker holds the run's lock right now."""
    lock = runs_dir() / cfg.id / CHECKPOINTS / ".lock"
    if not lock.exists():
        return True
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
    return True


EVAL_SHARE = 0.1  # evaluation of val + test after every epoch, as a share of its training time (docs/cpu_study.md)


def step_speed(cfg, data, steps: int = 2) -> float:
    """Training images/s of ``cfg`` on this machine: timed steps (after one warm-up) on random input at the
    run's size, batch and precision, with the run's model, criterion and optimiser."""
    plan = cfg.plan
    counts = torch.bincount(data.labels[data.indices("train")], minlength=data.num_classes)
    model, criterion = build_all(cfg, plan, data, counts)
    optimizer = make_optimizer(plan, model, criterion)
    bf16 = resolve_precision(plan.precision, torch.device("cpu"))[0] == "bf16"
    x = torch.randn(plan.batch_size, model.input_spec.channels, plan.image_size, plan.image_size)
    y = torch.randint(0, data.num_classes, (plan.batch_size,))
    if bf16:
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    times = [timed_step(model, criterion, optimizer, x, y, bf16) for _ in range(steps + 1)]
    return plan.batch_size / min(times[1:])


def trained_here(precision: str, threads: int) -> list:
    """The finished cpu records trained on this CPU at ``precision`` and ``threads`` torch threads: same model name
    and, where the record has it, the same instruction set (``cpu_capability``; records made before it was kept
    match by name alone)."""
    here = (cpu_name(), precision, threads)
    capability = torch.backends.cpu.get_cpu_capability()
    records = (load_record(run_dir) for run_dir in sorted(runs_dir().glob("*/")))
    return [r for r in records if r is not None and r.env.get("device") == "cpu"
            and (r.env.get("cpu"), r.env.get("precision"), r.env.get("torch_threads")) == here
            and r.env.get("cpu_capability", capability) == capability]


def recorded_speed(cfg, records: list) -> float | None:
    """Median training images/s over the epochs of the ``records`` like ``cfg`` (same model, model options,
    image size and batch); None if none. A run's own history measures what a timed step leaves out (data,
    augmentation, logging)."""
    speeds = [epoch["images_per_s"] for r in records
              if (r.config.model, r.config.model_options) == (cfg.model, cfg.model_options)
              and all(r.plan.get(key) == getattr(cfg.plan, key) for key in ("image_size", "batch_size"))
              for epoch in r.history if epoch.get("images_per_s")]
    return float(statistics.median(speeds)) if speeds else None


def speed_bound(cfg, records: list) -> float | None:
    """The most training images/s any DAF-MHSCA config can reach here: the ResNet18 control's, recorded here (every
    other config adds modules to the same trunk); None for other models or where no control is recorded. Lets a
    worker with ``--hours`` skip, without a timed step, a run that cannot finish in time."""
    if cfg.model != "daf_mhsca":
        return None
    return recorded_speed(dataclasses.replace(cfg, model_options=dict(paper.CONTROL_OPTIONS)), records)


def estimated_seconds(epochs: int, n_train: int, images_per_s: float) -> float:
    """Wall time of a run: its epochs of training images at ``images_per_s``, plus evaluation."""
    return epochs * n_train / images_per_s * (1 + EVAL_SHARE)


def epochs_left(cfg) -> int:
    """Epochs ``cfg`` has still to train: the engine resumes after the epochs its last checkpoint holds."""
    run_dir = runs_dir() / cfg.id
    done = len(history_lines(run_dir)) if (run_dir / CHECKPOINTS / "last.pt").exists() else 0
    return max(0, cfg.plan.epochs - done)


def listed_hours(cfg, records: list, n_train: int, epochs: int) -> tuple[str, float | None]:
    """A run's estimate for ``--list``, from records only (no timed step): ``"~1.9 h"`` where like runs trained
    here; ``"<= 1.9 h"`` for an ablation or the control, bounded by the full model's records (a removed module only
    removes work); ``"?"`` where no record bounds it; for the ``epochs`` left. Also the hours (None for "?")."""
    speed, mark = recorded_speed(cfg, records), "~"
    if speed is None and role(cfg)[0] in ("removal", "control"):
        opts = without_reading(cfg.profile, cfg.model_options)
        kept = {k: v for k, v in cfg.model_options.items() if k not in opts}
        full = dataclasses.replace(cfg, model_options={**kept, **SCOPES[cfg.profile].reading})
        speed, mark = recorded_speed(full, records), "<="
    if speed is None:
        return "?", None
    hours = estimated_seconds(epochs, cfg.plan.train_subset or n_train, speed) / 3600
    return f"{mark}{hours:.1f} h", hours


def list_queue(runs: list, threads: int, choice: str = "paired") -> None:
    """Print the queue with each run's state and, for runs left, its estimate on this CPU; then the total left."""
    n_train: dict[str, int] = {}
    left, hours, unknown = 0, 0.0, 0
    records, finished = {}, []
    for i, cfg in enumerate(runs):
        state = "done" if load_record(runs_dir() / cfg.id) else "in progress" if not claim(cfg) else "todo"
        if state == "done":
            finished.append(runs_dir() / cfg.id)
        estimate = ""
        if state != "done":
            if cfg.dataset not in n_train:
                n_train[cfg.dataset] = len(load_dataset(cfg.plan.dataset, **cfg.plan.data_options).indices("train"))
            precision = set_auto_precision(cfg, runs, choice)
            if precision not in records:
                records[precision] = trained_here(precision, threads)
            estimate, h = listed_hours(cfg, records[precision], n_train[cfg.dataset], epochs_left(cfg))
            left, hours, unknown = left + 1, hours + (h or 0.0), unknown + (h is None)
        print(f"{i:3d} tier {priority(cfg)[0]}  {state:11s} {estimate:>8s}  {precision if state != 'done' else '':4s}  {cfg.id}  {cfg.model} {cfg.model_options or ''}"
              f"{cfg.loss_options or ''} seed {cfg.seed}")
    print(f"[study] {left} runs left: about {hours:.0f} h for the {left - unknown} with an estimate (records on this CPU "
          f"at {threads} torch threads, one worker; ablations bounded by the full model), {unknown} without one")
    waiting = uncommitted(finished)
    if waiting:
        print(f"[study] {len(waiting)} finished records are not committed: {commit_hint(waiting)}")


def uncommitted(run_dirs: list[Path]) -> list[Path]:
    """The run folders among ``run_dirs`` whose record files git does not track or has changes in (checkpoints are
    ignored); none when this is not a git checkout. Only a person commits: a cut session's records wait here."""
    def changed(run_dir: Path) -> bool:
        try:
            return bool(subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=run_dir,
                                       capture_output=True, text=True, check=True).stdout.strip())
        except (OSError, subprocess.CalledProcessError):
            return False
    return [d for d in run_dirs if changed(d)]


def commit_hint(run_dirs: list[Path]) -> str:
    """The command that commits these records (their checkpoints are git-ignored), then RESULTS.md."""
    return ("git add " + " ".join(str(d) for d in run_dirs) + " && .venv/bin/python scripts/results_summary.py"
            " && git add RESULTS.md")


def predict(record) -> None:
    """Write the run's predictions.json; a run whose checkpoints are gone or disagree, or whose data is not the
    data at hand, is reported, not fatal: the worker goes on with the next."""
    try:
        check = write_predictions(record.dir, record)["check"]
        print(f"[study] {record.id}: predictions.json written ({check})", flush=True)
    except (FileNotFoundError, RuntimeError, ConfigError) as err:
        print(f"[study] {record.id}: no predictions.json: {err}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true",
                        help="print the queue, each run's state and its estimate here from the records (with --threads); train nothing")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of this worker (default: all cores)")
    parser.add_argument("--max-runs", type=int, default=None, help="stop after training this many runs")
    parser.add_argument("--predictions", action="store_true", help="write predictions.json of finished runs lacking it; train nothing")
    parser.add_argument("--hours", type=float, default=None,
                        help="start a run only if its estimate (the speed its like runs trained at here, else a timed step) "
                             "ends within this many hours of the worker's start; a run that would not is skipped for the "
                             "next that fits")
    parser.add_argument("--model", default=None,
                        help="train only this model's runs (e.g. ddamfn: a slow run given a worker of its own); the rest of "
                             "the queue still sets each run's pair precision")
    parser.add_argument("--auto-precision", choices=("paired", "fp32", "bf16"), default="paired",
                        help="what precision=auto trains in (sets $FER_AUTO_PRECISION per run): paired (default) the "
                             "precision of the full model's record of the run's dataset and seed, the run the ledger "
                             "pairs it with, else the machine's default (bf16 where the CPU has native bfloat16); "
                             "fp32 or bf16 for every run (docs/cpu_study.md)")
    args = parser.parse_args()
    runs = queue()
    models = sorted({cfg.model for cfg in runs})
    if args.model and args.model not in models:
        parser.error(f"--model {args.model}: the cpu study trains no such model (it trains {', '.join(models)})")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.list:
        list_queue(runs, torch.get_num_threads(), args.auto_precision)
        return 0
    if args.predictions:
        for cfg in runs:
            record = load_record(runs_dir() / cfg.id)
            if record is not None and not (record.dir / PREDICTIONS).exists():
                predict(record)
        return 0
    trained, deadline = 0, None if args.hours is None else time.time() + 3600 * args.hours
    for cfg in runs:
        if (args.model and cfg.model != args.model) or load_record(runs_dir() / cfg.id) is not None or not claim(cfg):
            continue
        precision = set_auto_precision(cfg, runs, args.auto_precision)
        if deadline is not None:
            data = load_dataset(cfg.plan.dataset, **cfg.plan.data_options)
            n_train, here = cfg.plan.train_subset or len(data.indices("train")), trained_here(precision, torch.get_num_threads())
            epochs = epochs_left(cfg)
            speed, source, about = recorded_speed(cfg, here), "as such runs trained here before", "about"
            if speed is None:
                bound = speed_bound(cfg, here)
                if bound is not None and time.time() + estimated_seconds(epochs, n_train, bound) > deadline:
                    speed, source, about = bound, "the ResNet18 control's speed here, the most any DAF-MHSCA config reaches", "at least"
                else:
                    speed, source = step_speed(cfg, data), "a timed step"
            need = estimated_seconds(epochs, n_train, speed)
            estimate = f"needs {about} {need / 3600:.1f} h at {speed:.1f} img/s ({source})"
            if time.time() + need > deadline:
                print(f"[study] {cfg.id}: {estimate}, more than the {max(0.0, deadline - time.time()) / 3600:.1f} h "
                      "left (--hours); skipped, the next that fits trains", flush=True)
                continue
            print(f"[study] {cfg.id}: {estimate}", flush=True)
        t0 = time.time()
        print(f"[study] {cfg.id} ({cfg.model} {cfg.model_options} {cfg.loss_options} seed {cfg.seed}, {precision})", flush=True)
        run = get_run(cfg, progress=False)
        predict(run)
        print(f"[study] {cfg.id} done in {(time.time() - t0) / 60:.1f} min: test "
              f"{run.metrics['best_val']['test']['accuracy']:.4f} (epoch chosen on val); commit it: "
              f"{commit_hint([run.dir])}", flush=True)
        trained += 1
        if args.max_runs is not None and trained >= args.max_runs:
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
