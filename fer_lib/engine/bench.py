"""Engine overhead: training images/s of the full engine against the bare model step, same data and size.

The bare step is the least a training loop can do: inputs already resized and normalised on the
device, then forward, criterion, backward, optimiser step. The engine adds indexing, on-device
augmentation, logging and progress. Both run the same model, criterion, batch and number of steps.
Short epochs of the two alternate (engine, bare, engine, bare, ...); the ratio is the median over
the pairs after the first (warm-up) of engine / bare, so that other programs sharing the machine,
which slow both sides of a pair alike, disturb it as little as possible.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from fer_lib.data import FaceData
from fer_lib.engine import distributed as D
from fer_lib.engine.config import RunConfig
from fer_lib.engine.inputs import load_data, model_input
from fer_lib.engine.records import environment, read_json
from fer_lib.engine.optimization import make_optimizer
from fer_lib.engine.precision import resolve_precision
from fer_lib.engine.train import build_all, train_indices, train_run


def bench_data(steps: int, batch_size: int, num_classes: int = 7, size: int = 48) -> FaceData:
    """Built-in synthetic 48 x 48 faces: enough for ``steps`` batches, a few to evaluate."""
    per_class = -(-steps * batch_size // num_classes)
    return load_data("synthetic", num_classes=num_classes, per_class=(per_class, 2, 2), size=size)[0]


def timed_step(model: torch.nn.Module, criterion: torch.nn.Module, optimizer: torch.optim.Optimizer,
               x: torch.Tensor, y: torch.Tensor, bf16: bool) -> float:
    """Seconds of one bare training step: forward and criterion (bf16 autocast if ``bf16``), backward, optimiser step."""
    cuda = x.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = criterion(model(x), y).total
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _bare_epoch(model: torch.nn.Module, criterion: torch.nn.Module, optimizer: torch.optim.Optimizer,
                x: torch.Tensor, y: torch.Tensor, batch_size: int, bf16: bool) -> float:
    """Images/s of one pass of :func:`timed_step` over pre-transformed inputs."""
    model.train()
    return len(x) / sum(timed_step(model, criterion, optimizer, xb, yb, bf16) for xb, yb in zip(x.split(batch_size), y.split(batch_size)))


def bench_engine(model: str = "daf_mhsca", image_size: int = 64, batch_size: int = 64, steps: int = 3,
                 epochs: int = 12, device: str | None = None) -> dict[str, Any]:
    """One measurement: ``epochs`` engine epochs alternating with as many bare-step epochs, in images/s."""
    ctx = D.setup(device)
    load_before = os.getloadavg()[0]
    data = bench_data(steps, batch_size)
    cfg = RunConfig(dataset="synthetic", model=model, profile="paper", image_size=image_size,
                    overrides={"epochs": epochs, "batch_size": batch_size, "train_subset": steps * batch_size})
    plan = cfg.plan
    train_idx = train_indices(data, plan)
    counts = torch.bincount(data.labels[train_idx], minlength=data.num_classes)

    # Bare step: same model, criterion and optimiser; inputs transformed once, outside the timing.
    net, criterion = build_all(cfg, plan, data, counts)
    net.to(ctx.device)
    criterion.to(ctx.device)
    bf16 = resolve_precision(plan.precision, ctx.device)[0] == "bf16"  # as the engine trains (precision auto)
    x = model_input(data.images[train_idx].to(ctx.device), net.input_spec)
    if bf16:
        net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = data.labels[train_idx].to(ctx.device)
    optimizer = make_optimizer(plan, net, criterion)
    bare: list[float] = []

    def bare_epoch(epoch: int) -> None:
        bare.append(_bare_epoch(net, criterion, optimizer, x, y, batch_size, bf16))

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / cfg.id
        train_run(cfg, run_dir, ctx, progress=False, log=lambda msg: None, data=data, epoch_hook=bare_epoch)
        engine = [json.loads(line)["images_per_s"] for line in (run_dir / "history.jsonl").read_text().splitlines()]
        augment = read_json(run_dir / "env.json").get("augment")
    env = environment(ctx, plan)
    pairs = [e / b for e, b in zip(engine[1:], bare[1:])]  # the first epoch of each warms up
    return {
        "model": model,
        "image_size": image_size,
        "batch_size": batch_size,
        "steps_per_epoch": steps,
        "epochs": epochs,
        "engine_images_per_s": statistics.median(engine[1:]),
        "bare_images_per_s": statistics.median(bare[1:]),
        "ratio": statistics.median(pairs),
        "engine_epochs": engine,
        "bare_epochs": bare,
        "augment": augment,
        "load_average": [load_before, os.getloadavg()[0]],  # 1-minute load of the machine, start and end
        "cpu_count": os.cpu_count(),
        "device": env["device"],
        "cpu": env["cpu"],
        "torch": env["torch"],
        "torch_threads": env["torch_threads"],
        "date_utc": time.strftime("%Y-%m-%d", time.gmtime()),
    }
