"""The training loop: one run from its config to its record, resumable at any epoch.

The whole dataset sits on the device as uint8; each step indexes a batch, augments it there
(``fer_lib.data.pipeline.Augment``), and runs model + criterion in one module (wrapped in
DistributedDataParallel under torchrun). Every epoch evaluates val and test, then writes the
checkpoint atomically; the randomness of epoch e is seeded from (seed, e) alone, so a run
resumed after a kill ends exactly where an uninterrupted one does on CPU.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from fer_lib.data import FaceData
from fer_lib.engine import distributed as D
from fer_lib.engine.config import TRAINING_CODE_VERSION, RunConfig
from fer_lib.engine.evaluate import classification_metrics, predict_indices, select_epochs
from fer_lib.engine.inputs import load_data, make_augment
from fer_lib.engine.optimization import is_fused, lr_at, make_optimizer
from fer_lib.engine.precision import AUTO_ENV, resolve_precision
from fer_lib.engine.recipes import ConfigError, Plan
from fer_lib.engine.records import (
    CHECKPOINTS,
    atomic_save,
    atomic_write_json,
    atomic_write_text,
    environment,
    history_lines,
    json_safe,
    read_json,
)
from fer_lib.losses import build_criterion
from fer_lib.models import build_model

SUBSET_SEED = 0  # the cpu profile's training subset is the same draw for every seed


class TrainStep(nn.Module):
    """Model and criterion as one module, so DDP synchronises the criterion's parameters (class centres) too."""

    def __init__(self, model: nn.Module, criterion: nn.Module):
        super().__init__()
        self.model, self.criterion = model, criterion

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        out = self.model(x)
        loss = self.criterion(out, labels)
        return loss.total, out.logits.detach(), loss.parts


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (seed, epoch, rank), identical on every machine."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v + 0x632BE59BD9B4E019 + (h << 6) + (h >> 2))) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), numpy and random."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def train_indices(data: FaceData, plan: Plan) -> torch.Tensor:
    """Training rows, or the profile's fixed random subset of them."""
    idx = data.indices("train")
    if plan.train_subset is not None and plan.train_subset < len(idx):
        pick = torch.randperm(len(idx), generator=torch.Generator().manual_seed(SUBSET_SEED))[: plan.train_subset]
        idx = idx[pick.sort().values]
    return idx


def build_all(cfg: RunConfig, plan: Plan, data: FaceData, counts: torch.Tensor) -> tuple[nn.Module, nn.Module]:
    """Model and criterion, seeded by the run's seed; bad model or loss options raise ConfigError."""
    seed_everything(cfg.seed)
    try:
        model = build_model(cfg.model, data.num_classes, image_size=plan.image_size, **cfg.model_options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model {cfg.model!r} rejects model_options {cfg.model_options}: {err}") from err
    model.eval()
    with torch.no_grad():
        feat_dim = model(torch.zeros(2, model.input_spec.channels, plan.image_size, plan.image_size)).features.shape[1]
    model.train()
    try:
        criterion = build_criterion(model.criterion, counts, data.num_classes, feat_dim, **cfg.loss_options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"criterion {model.criterion!r} rejects loss_options {cfg.loss_options}: {err}") from err
    return model, criterion


PROBE_EVERY = 50  # steps between measurements of the gradient each loss term sends into the network


def prepare(cfg: RunConfig, ctx: D.Context, data: FaceData | None = None) -> dict[str, Any]:
    """Load data, check the config against it, build everything: all before any training step."""
    plan = cfg.plan
    if data is None:
        data, loader_name = load_data(plan.dataset, **plan.data_options)
    else:
        loader_name = "given in memory"
    train_idx = train_indices(data, plan)
    if plan.batch_size > len(train_idx):
        raise ConfigError(
            f"batch_size {plan.batch_size} is larger than the training split of {plan.dataset} ({len(train_idx)} faces)"
        )
    if plan.batch_size % ctx.world:
        raise ConfigError(f"batch_size {plan.batch_size} does not split evenly over {ctx.world} processes")
    counts = torch.bincount(data.labels[train_idx], minlength=data.num_classes)
    model, criterion = build_all(cfg, plan, data, counts)
    return {"plan": plan, "data": data, "loader": loader_name, "train_idx": train_idx, "counts": counts, "model": model, "criterion": criterion}


def _evaluate(model: nn.Module, data: FaceData, images: torch.Tensor, plan: Plan, ctx: D.Context, spec: Any,
              bf16: bool) -> dict[str, Any]:
    """val and test metrics (None for an empty split); each rank predicts its share, rank 0 scores."""
    out: dict[str, Any] = {}
    for split in ("val", "test"):
        idx = data.indices(split)
        if len(idx) == 0:
            out[split] = None
            continue
        mine = idx[ctx.rank :: ctx.world]
        res = predict_indices(model, data, mine, spec, plan.eval_batch_size, ctx.device, keep=("logits",), images=images, bf16=bf16)
        preds = res["logits"].argmax(1) if len(mine) else np.zeros(0, dtype=np.int64)
        parts = D.gather_objects(ctx, (res["indices"], preds))
        rows = np.concatenate([p[0] for p in parts])
        pred = np.concatenate([p[1] for p in parts])
        out[split] = classification_metrics(data.labels.numpy()[rows], pred, data.num_classes) if ctx.is_main else None
    return out


def _open_record(cfg: RunConfig, run_dir: Path, parts: dict[str, Any]) -> dict[str, Any]:
    """Write config.json (refusing a folder that holds another config or other data); return the old env.json."""
    plan, data = parts["plan"], parts["data"]
    meta = {
        "id": cfg.id,
        "code": TRAINING_CODE_VERSION,  # the trainer version the id hashes (config.TRAINING_CODE_VERSION)
        "config": cfg.to_dict(),
        "plan": plan.to_dict(),
        "data": {
            "name": data.name,
            "classes": list(data.classes),
            "synthetic": bool(data.synthetic),
            "source": data.source,
            "fingerprint": data.fingerprint,
            "loader": parts["loader"],
            "n_train_used": len(parts["train_idx"]),
            **{f"n_{s}": int(len(data.indices(s))) for s in ("train", "val", "test")},
            "train_class_counts": parts["counts"].tolist(),
        },
    }
    if (run_dir / "config.json").exists():
        old = read_json(run_dir / "config.json")
        if old["config"] != meta["config"]:
            raise RuntimeError(f"{run_dir} holds another config: refusing to overwrite it")
        if old["data"].get("fingerprint") != data.fingerprint:
            raise ConfigError(
                f"{run_dir} was started on other data (fingerprint {old['data'].get('fingerprint') or 'not recorded'}, "
                f"{old['data'].get('n_train')} training faces) than the data at hand ({data.fingerprint}, "
                f"{meta['data']['n_train']}); move that folder away to train on this data"
            )
    (run_dir / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", meta)
    return read_json(run_dir / "env.json") if (run_dir / "env.json").exists() else {}


def _resume(cfg: RunConfig, last: Path, device: torch.device, model: nn.Module, criterion: nn.Module,
            optimizer: torch.optim.Optimizer) -> tuple[list[dict[str, Any]], int]:
    """Load ``last.pt`` (weights only: no pickled code runs) into the run; returns (history, epochs done)."""
    try:
        state = torch.load(last, map_location=device, weights_only=True)
    except Exception as err:  # truncated, foreign or pickled-code files alike
        raise ConfigError(f"{last} cannot be resumed ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                          f"delete it to train the run from its start") from None
    if state.get("id") != cfg.id:
        raise ConfigError(f"{last} belongs to run {state.get('id')!r}, not {cfg.id}: refusing to resume it; delete it to train from the start")
    if "optimizer" not in state:  # dropped only once metrics.json was written
        raise ConfigError(f"{last} is a finished run's checkpoint but {last.parent.parent / 'metrics.json'} is missing: "
                          f"restore metrics.json, or delete the run folder to train it again")
    model.load_state_dict(state["model"])
    criterion.load_state_dict(state["criterion"])
    optimizer.load_state_dict(state["optimizer"])
    _set_rng(state["rng"])
    return [json.loads(line) for line in state["history"]], int(state["epoch"])


def train_run(
    cfg: RunConfig,
    run_dir: Path,
    ctx: D.Context,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    stop_after_epochs: int | None = None,
    data: FaceData | None = None,
    epoch_hook: Callable[[int], None] | None = None,
) -> None:
    """Train ``cfg`` into ``run_dir`` (resuming from its checkpoint if any); rank 0 writes the record.

    ``stop_after_epochs`` ends the process's work after that many epochs in total (the run stays
    unfinished and resumable); ``data`` replaces the loaded dataset; ``epoch_hook(epoch)`` runs after
    each epoch (the benchmark interleaves its bare-step epochs there).
    """
    parts = prepare(cfg, ctx, data)
    plan: Plan = parts["plan"]
    data = parts["data"]
    model, criterion = parts["model"], parts["criterion"]
    ckpt_dir = run_dir / CHECKPOINTS
    show = (progress if progress is not None else True) and ctx.is_main
    say = (log or tqdm.write) if ctx.is_main else (lambda msg: None)

    precision, precision_note = resolve_precision(plan.precision, ctx.device)
    bf16 = precision == "bf16"
    cuda = ctx.device.type == "cuda"
    model.to(ctx.device)
    criterion.to(ctx.device)
    if bf16:
        model.to(memory_format=torch.channels_last)
    step = TrainStep(model, criterion)
    optimizer = make_optimizer(plan, model, criterion)
    if ctx.distributed:
        step = nn.parallel.DistributedDataParallel(
            step, device_ids=[ctx.device.index] if cuda else None, find_unused_parameters=True
        )

    history: list[dict[str, Any]] = []
    start = 0
    env: dict[str, Any] = _open_record(cfg, run_dir, parts) if ctx.is_main else {}
    D.barrier(ctx)
    last = ckpt_dir / "last.pt"
    if last.exists() and env.get("precision") not in (None, precision):
        # plan.precision "auto" resolves per machine: a run must not switch precision half-way, unseen.
        auto_hint = f" (or with ${AUTO_ENV}={env['precision']})" if plan.precision == "auto" else ""
        raise ConfigError(f"{run_dir} was trained in {env['precision']} up to its last checkpoint, and would resume in {precision} "
                          f"here ({precision_note or 'the plan asks for it'}): resume it on a machine that trains in "
                          f"{env['precision']}{auto_hint}, or move the folder away to train it from the start")
    lost = 0  # epochs in history.jsonl whose checkpoint is gone (it stays on the machine that trained them)
    if last.exists():
        history, start = _resume(cfg, last, ctx.device, model, criterion, optimizer)
        say(f"[{cfg.id}] resuming after epoch {start}")
    elif ctx.is_main and (lost := len(history_lines(run_dir))):
        say(f"[{cfg.id}] history.jsonl holds {lost} epoch(s) but {last} is missing (checkpoints are not committed): "
            "training from epoch 0; env.json records the restart")
    if ctx.is_main:
        env = {**environment(ctx, plan), "resumed_after_epochs": env.get("resumed_after_epochs", []) + ([start] if start else []),
               "restarted_losing_epochs": env.get("restarted_losing_epochs", []) + ([lost] if lost else [])}
        env.update(precision=precision, amp="bfloat16" if bf16 else None, channels_last=bf16, precision_note=precision_note)
        env["optimizer_fused"] = is_fused(optimizer)  # after _resume: a checkpoint keeps its implementation
        env["augment"] = make_augment(model.input_spec, True, plan.augment)[1]
        atomic_write_json(run_dir / "env.json", env)
        atomic_write_text(run_dir / "history.jsonl", "".join(json_safe_line(r) for r in history))

    images = data.images.to(ctx.device)
    labels = data.labels.to(ctx.device)
    augment = make_augment(model.input_spec, True, plan.augment)[0].to(ctx.device)
    train_idx = parts["train_idx"].to(ctx.device)
    per_rank = plan.batch_size // ctx.world
    best_val = max((r["val"]["accuracy"] for r in history if r.get("val")), default=-1.0)
    end = plan.epochs if stop_after_epochs is None else min(plan.epochs, stop_after_epochs)
    loop = {"step": step, "optimizer": optimizer, "augment": augment, "images": images, "labels": labels,
            "train_idx": train_idx, "per_rank": per_rank, "bf16": bf16, "show": show}

    for epoch in range(start, end):
        row = _one_epoch(cfg, plan, ctx, epoch, loop)
        t1 = time.perf_counter()
        scores = _evaluate(model, data, images, plan, ctx, model.input_spec, bf16)
        row["eval_seconds"] = time.perf_counter() - t1
        if ctx.is_main:
            row.update(
                val_accuracy=scores["val"]["accuracy"] if scores["val"] else None,
                test_accuracy=scores["test"]["accuracy"] if scores["test"] else None,
                val=scores["val"],
                test=scores["test"],
            )
            history.append(json_safe(row))
            say(
                f"[{cfg.id}] epoch {epoch + 1}/{plan.epochs} loss {row['loss']:.4f} train {row['train_accuracy']:.3f} "
                f"val {row['val_accuracy'] if row['val_accuracy'] is not None else float('nan'):.3f} "
                f"test {row['test_accuracy'] if row['test_accuracy'] is not None else float('nan'):.3f} "
                f"{row['images_per_s']:.0f} img/s"
            )
            if scores["val"] and scores["val"]["accuracy"] > best_val:
                best_val = scores["val"]["accuracy"]
                atomic_save({"id": cfg.id, "model": model.state_dict(), "criterion": criterion.state_dict(), "epoch": epoch + 1},
                            ckpt_dir / "best_val.pt")
            atomic_save(
                {
                    "id": cfg.id,
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "criterion": criterion.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": [json_safe_line(r) for r in history],
                    "rng": _get_rng(),
                },
                last,
            )
            atomic_write_text(run_dir / "history.jsonl", "".join(json_safe_line(r) for r in history))
        D.barrier(ctx)
        if epoch_hook is not None:
            epoch_hook(epoch + 1)

    if ctx.is_main and len(history) >= plan.epochs:
        _finish(cfg, run_dir, history, env, model, criterion)
    D.barrier(ctx)


def _one_epoch(cfg: RunConfig, plan: Plan, ctx: D.Context, epoch: int, loop: dict[str, Any]) -> dict[str, Any]:
    """Train one epoch; returns its history row (losses, train accuracy, lr, speed, loss-term gradients)."""
    step, optimizer, augment, images, labels = loop["step"], loop["optimizer"], loop["augment"], loop["images"], loop["labels"]
    train_idx, bf16, cuda = loop["train_idx"], loop["bf16"], ctx.device.type == "cuda"
    criterion = step.module.criterion if isinstance(step, nn.parallel.DistributedDataParallel) else step.criterion
    # The randomness of epoch e depends only on (seed, e): resume replays it exactly.
    order = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(_mix(cfg.seed, epoch))).to(ctx.device)]
    seed_everything(_mix(cfg.seed, epoch, ctx.rank + 1))
    batches = [b for b in D.shard(order, ctx).split(loop["per_rank"]) if len(b) > 1]  # BatchNorm needs 2 faces
    step.train()
    sums: dict[str, torch.Tensor] = {}
    probes: dict[str, list[float]] = {}
    norms: list[torch.Tensor] = []  # global gradient norms before clipping (grad_clip set)
    correct = torch.zeros((), device=ctx.device)
    seen = 0
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    bar = tqdm(total=sum(len(b) for b in batches) * ctx.world, unit="img", unit_scale=True, leave=False,
               desc=f"{cfg.id} {epoch + 1}/{plan.epochs}", disable=not loop["show"], mininterval=1.0)
    lr = plan.lr
    for i, batch in enumerate(batches):
        lr = lr_at(plan, epoch, i, len(batches))
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = augment(images[batch])
        y = labels[batch]
        if bf16:
            x = x.contiguous(memory_format=torch.channels_last)
        probe = i % PROBE_EVERY == 0 and hasattr(criterion, "probe_grads")
        if probe:
            criterion.probe_grads = True
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=bf16):
            total, logits, loss_parts = step(x, y)
        if probe:
            criterion.probe_grads = False
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if plan.grad_clip is not None:  # the norm before clipping, kept to show spikes
            norms.append(torch.nn.utils.clip_grad_norm_(step.parameters(), plan.grad_clip, foreach=True).detach())
        optimizer.step()
        n = len(batch)
        for key, value in {"loss": total.detach(), **loss_parts}.items():
            if key.startswith("grad_"):
                probes.setdefault(key, []).append(float(value))
                continue
            value = value.detach().float().to(ctx.device) * n
            sums[key] = sums[key] + value if key in sums else value
        correct += (logits.argmax(1) == y).sum()
        seen += n
        bar.update(n * ctx.world)
        if loop["show"] and i % 20 == 0:
            bar.set_postfix(loss=f"{float(total.detach()):.3f}", lr=f"{lr:.2e}", refresh=False)
    bar.close()
    if cuda:
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - t0
    keys = sorted(sums)
    packed = torch.stack([sums[k] for k in keys] + [correct.float(), torch.tensor(float(seen), device=ctx.device)])
    packed = D.all_sum(ctx, packed).cpu()
    seen_all = float(packed[-1])
    row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
    for k, v in zip(keys, packed[: len(keys)].tolist()):
        row["loss" if k == "loss" else f"loss_{k}"] = v / seen_all
    # Mean over the probed steps (every PROBE_EVERY-th) of the gradient norm each term sends into x_F'.
    row.update({k: float(np.mean(v)) for k, v in sorted(probes.items())})
    if norms:  # this rank's steps: mean and largest norm, and the share of steps the clip shortened
        norm = torch.stack(norms).float().cpu()
        row.update(norm_before_clip_mean=float(norm.mean()), norm_before_clip_max=float(norm.max()),
                   clipped_fraction=float((norm > plan.grad_clip).float().mean()))
    row.update(train_accuracy=float(packed[-2]) / seen_all, seconds=train_seconds, images_per_s=seen_all / train_seconds)
    return row


def _finish(cfg: RunConfig, run_dir: Path, history: list[dict[str, Any]], env: dict[str, Any], model: nn.Module,
            criterion: nn.Module) -> None:
    """Write metrics.json (last: the run is then finished) and keep only the weights in last.pt."""
    metrics = select_epochs(history)
    metrics["epochs_trained"] = len(history)
    metrics["timing"] = {
        "train_seconds": sum(r["seconds"] for r in history),
        "eval_seconds": sum(r["eval_seconds"] for r in history),
        "images_per_s_mean": float(np.mean([r["images_per_s"] for r in history])),
    }
    env["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write_json(run_dir / "env.json", env)
    atomic_write_json(run_dir / "metrics.json", json_safe(metrics))
    # The finished run needs no optimiser state: keep the weights only.
    atomic_save({"id": cfg.id, "epoch": len(history), "model": model.state_dict(), "criterion": criterion.state_dict()},
                run_dir / CHECKPOINTS / "last.pt")


def json_safe_line(row: dict[str, Any]) -> str:
    from fer_lib.engine.config import canonical_json

    return canonical_json(json_safe(row)) + "\n"


def _get_rng() -> dict[str, Any]:
    """RNG states as tensors and plain tuples: loadable with ``weights_only=True``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
