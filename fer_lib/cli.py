"""Command line: ``python -m fer_lib [--debug] <command> ...``; ``python -m fer_lib <command> --help`` for details.

Commands register themselves with :func:`fer_lib.commands.subcommand`; a module that defines more
of them is listed in :data:`COMMAND_MODULES` and imported when the parser is built. A user error
prints one line ``error: ...`` and exits with status 2 (``--debug`` shows its traceback).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, NoReturn, Sequence

from fer_lib.commands import CHECKPOINT_CHOICES, SUBCOMMANDS, Handler, check_device, subcommand

# Modules defining further subcommands with @subcommand (imported lazily, in this order).
COMMAND_MODULES: list[str] = ["fer_lib.predict"]
INTERRUPTED = 130  # the shell's status for a process stopped by Ctrl-C (128 + SIGINT)

__all__ = ["COMMAND_MODULES", "SUBCOMMANDS", "build_parser", "main", "subcommand"]


# ---------------------------------------------------------------- shared arguments


def _value(text: str) -> Any:
    """``3`` -> 3, ``0.1`` -> 0.1, ``true`` -> True, ``[1,2]`` -> [1, 2], anything else stays a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            from fer_lib.engine import ConfigError

            raise ConfigError(f"{flag} expects KEY=VALUE, not {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = _value(value)
    return out


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that describe a RunConfig (shared by train, eval and others)."""
    g = parser.add_argument_group("run configuration")
    g.add_argument("--dataset", default="fer2013", help="dataset name (fer2013, ferplus, rafdb, affectnet7, affectnet8, ...)")
    g.add_argument("--model", default="daf_mhsca", help="registered model name (daf_mhsca, resnet18, ...)")
    g.add_argument("--recipe", default=None, help="paper (Table 2 as printed), ours, scratch, dan or ddamfn (default: the profile's)")
    g.add_argument("--profile", default="smoke", help="smoke (synthetic, seconds), demo (synthetic, minutes), cpu (real data, 2 cores) or paper (224 px, 40 epochs)")
    g.add_argument("--seed", type=int, nargs="+", default=[0], help="one or more seeds (default 0)")
    g.add_argument("--image-size", type=int, default=None, help="input side in pixels (default: the profile's)")
    g.add_argument("--model-option", "-m", action="append", metavar="KEY=VALUE", help="model switch, e.g. -m num_heads=8 -m use_daf=false")
    g.add_argument("--loss-option", "-l", action="append", metavar="KEY=VALUE", help="loss option, e.g. -l theta=0.5")
    g.add_argument("--set", "-s", action="append", metavar="KEY=VALUE", dest="overrides", help="recipe override: epochs, lr, batch_size, train_subset, optimizer, ...")
    g.add_argument("--data-option", action="append", metavar="KEY=VALUE", help="keyword argument of load_dataset")
    parser.add_argument("--results", default=None, help="results folder (default $FER_RESULTS or results/); runs go to <results>/runs/")


def configs_from_args(args: argparse.Namespace) -> list[Any]:
    """One RunConfig per seed given on the command line (each seed once)."""
    from fer_lib.engine import ConfigError, RunConfig

    twice = sorted({s for s in args.seed if args.seed.count(s) > 1})
    if twice:
        raise ConfigError(f"--seed lists {', '.join(map(str, twice))} more than once; give each seed once "
                          f"(repeated seeds are one run, and their spread would read 0)")
    return [
        RunConfig(
            dataset=args.dataset,
            model=args.model,
            model_options=_pairs(args.model_option, "--model-option"),
            loss_options=_pairs(args.loss_option, "--loss-option"),
            recipe=args.recipe,
            profile=args.profile,
            seed=seed,
            image_size=args.image_size,
            overrides=_pairs(args.overrides, "--set"),
            data_options=_pairs(args.data_option, "--data-option"),
        )
        for seed in args.seed
    ]


def _summary(run: Any) -> str:
    lines = [f"{run.id}  ({run.dir})"]
    for selection in ("last", "best_val", "best_test"):
        block = run.metrics.get(selection)
        if not block:
            lines.append(f"  {selection:9s} -")
            continue
        cells = []
        for split in ("val", "test"):
            m = block.get(split)
            if m:
                cells.append(f"{split} acc {m['accuracy']:.4f} bal {m['balanced_accuracy']:.4f}")
        lines.append(f"  {selection:9s} epoch {block['epoch']:3d}  " + "  ".join(cells))
    return "\n".join(lines)


# ---------------------------------------------------------------- train


@subcommand("train", "train runs (or find them already recorded) and print their metrics")
def _train(parser: argparse.ArgumentParser) -> Handler:
    add_config_arguments(parser)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's, all cores); 1 lets two runs share 2 cores")
    parser.add_argument("--dry-run", action="store_true", help="print the id, plan and state of each run; train nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:
        from fer_lib.engine import ConfigError, aggregate_seeds, get_run, runs_dir
        from fer_lib.engine.runs import validate

        configs = configs_from_args(args)
        for cfg in configs:
            validate(cfg)
        check_device(args.device)
        if args.threads is not None:
            import torch

            if args.threads < 1:
                raise ConfigError(f"--threads must be at least 1, not {args.threads}")
            torch.set_num_threads(args.threads)
        if args.dry_run:
            for cfg in configs:
                done = get_run(cfg, train=False, root=args.results) is not None
                print(json.dumps({"id": cfg.id, "finished": done, "dir": str(runs_dir(args.results) / cfg.id), "plan": cfg.plan.to_dict()}, indent=1))
            return 0
        runs = [get_run(cfg, root=args.results, device=args.device, progress=not args.no_progress) for cfg in configs]
        import torch.distributed as dist

        if dist.is_initialized() and dist.get_rank() != 0:
            return 0
        for run in runs:
            print(_summary(run))
        if len(runs) > 1:
            agg = aggregate_seeds(runs)
            for key in ("best_val/test/accuracy", "last/test/accuracy"):
                if key in agg:
                    print(f"seeds {agg['seeds']}: {key} {agg[key]['mean']:.4f} +- {agg[key]['std']:.4f}")
        return 0

    return run


# ---------------------------------------------------------------- eval


@subcommand("eval", "show a recorded run's metrics, or re-evaluate its checkpoint")
def _eval(parser: argparse.ArgumentParser) -> Handler:
    add_config_arguments(parser)
    parser.add_argument("--run", default=None, help="a run id or folder (instead of the configuration flags)")
    parser.add_argument("--recompute", action="store_true", help="load the checkpoint and evaluate val and test again")
    parser.add_argument("--which", default="best_val", choices=CHECKPOINT_CHOICES, help="checkpoint for --recompute: best_val or last")
    parser.add_argument("--json", action="store_true", help="print metrics as JSON")

    def run(args: argparse.Namespace) -> int:
        from fer_lib.engine import ConfigError, aggregate_seeds, classification_metrics, get_run, load_model, predict
        from fer_lib.engine.inputs import load_data
        from fer_lib.engine.runs import validate

        if args.run:
            runs = [_recorded_run(args.run, args.results)]
        else:
            configs = configs_from_args(args)
            for cfg in configs:
                validate(cfg)
            runs = [get_run(cfg, train=False, root=args.results) for cfg in configs]
            missing = [cfg.id for cfg, r in zip(configs, runs) if r is None]
            if missing:
                raise ConfigError(f"not trained yet: {missing} (use `python -m fer_lib train` with the same flags)")
        for record in runs:
            if args.recompute:
                model, _ = load_model(record, which=args.which)
                data, _ = load_data(record.plan["dataset"], **record.plan["data_options"])
                fresh = {}
                for split in ("val", "test"):
                    if len(data.indices(split)):
                        pred = predict(model, data, split)
                        fresh[split] = classification_metrics(pred["labels"], pred["logits"].argmax(1), data.num_classes)
                print(json.dumps({"id": record.id, "checkpoint": args.which, **fresh}, indent=1) if args.json else
                      f"{record.id} ({args.which}): " + "  ".join(f"{s} acc {m['accuracy']:.4f}" for s, m in fresh.items()))
            else:
                print(json.dumps({"id": record.id, **record.metrics}, indent=1) if args.json else _summary(record))
        if len(runs) > 1 and not args.recompute:
            agg = aggregate_seeds(runs)
            print(json.dumps(agg, indent=1) if args.json else "\n".join(
                f"{k}: {v['mean']:.4f} +- {v['std']:.4f}" for k, v in agg.items() if isinstance(v, dict)))
        return 0

    return run


def _recorded_run(run: str, results: str | None) -> Any:
    """The finished record of ``--run`` (an id or a folder); ConfigError saying why there is none."""
    from pathlib import Path

    from fer_lib.engine import ConfigError, RunConfig, get_run, load_record, runs_dir

    path = Path(run) if Path(run).is_dir() else runs_dir(results) / run
    record = load_record(path)
    if record is not None:
        return record
    if (path / "config.json").is_file() and path.parent.name == "runs":
        # get_run says whether the run is unfinished, or finished with its metrics.json lost
        cfg = RunConfig.from_dict(json.loads((path / "config.json").read_text())["config"])
        if cfg.id == path.name:
            get_run(cfg, train=False, root=path.parent.parent)
    raise ConfigError(f"no finished run in {path} (no metrics.json); list runs with `ls {runs_dir(results)}`")


# ---------------------------------------------------------------- bench


@subcommand("bench", "training images/s of the engine against the bare model step (same data and size)")
def _bench(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("--model", default="daf_mhsca")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="training steps per epoch")
    parser.add_argument("--epochs", type=int, default=12, help="engine epochs, alternating with as many bare-step epochs")
    parser.add_argument("--device", default=None)

    def run(args: argparse.Namespace) -> int:
        from fer_lib.engine import ConfigError
        from fer_lib.engine.bench import bench_engine
        from fer_lib.models import available_models

        if args.model not in available_models():
            raise ConfigError(f"unknown model {args.model!r}; choose one of {available_models()}")
        check_device(args.device)
        result = bench_engine(args.model, args.image_size, args.batch_size, args.steps, args.epochs, args.device)
        print(json.dumps(result, indent=1))
        return 0

    return run


# ---------------------------------------------------------------- entry point


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors in the one-line form of every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    parser = _Parser(prog="python -m fer_lib", description="DAF-MHSCA reproduction: train, evaluate and benchmark runs.")
    debug_help = "show the traceback of an error instead of its one-line message"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
        p.set_defaults(handler=command.configure(p))
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (configuration, data, files, checkpoints), not a bug."""
    from fer_lib.data import DatasetError
    from fer_lib.engine import ConfigError
    from fer_lib.predict import PredictError

    return ConfigError, DatasetError, PredictError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError


def one_line(err: BaseException) -> str:
    """An exception's message on one line (its own lines joined); an OSError as ``path: reason``."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    return " ".join(part.strip() for part in str(err).splitlines() if part.strip()) or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command. A user error prints ``error: ...`` on one line and returns 2
    (``--debug``: its traceback instead); Ctrl-C prints one line and returns 130."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; a run started again resumes from its last finished epoch", file=sys.stderr)
        return INTERRUPTED
    except user_errors() as err:
        if args.debug:
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
