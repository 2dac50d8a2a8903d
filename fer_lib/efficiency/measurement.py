"""Efficiency of every model, measured the same way in one run (Figure 9, Sec. 3.8).

For each model at its paper input size: parameters, MACs (``torch.utils.flop_counter``, MACs =
FLOPs / 2; convolutions, matrix products and attention are counted, element-wise ops are not),
parameter memory, training memory, ms per training step (forward + loss + backward + Adam) and
inference images/s at batch 1 and 64.

Training memory is what the device lets us measure honestly:
- CUDA: ``torch.cuda.max_memory_allocated`` over one training step ("cuda_peak");
- CPU: there is no allocator peak to read, so we report an estimate named ``cpu_estimate`` =
  parameters + gradients + Adam's two moment buffers + the tensors autograd saves for backward
  (summed over distinct storages with ``torch.autograd.graph.saved_tensors_hooks``). It leaves out
  short-lived temporaries, so it is a lower bound of the true peak.

Model, criterion, optimiser and precision come from the trainer's own set-up
(``train.build_all``, ``optimization.make_optimizer``, ``precision.resolve_precision``; Table 2's
Adam at lr 1e-4, fp32 unless ``precision`` asks otherwise), so any registered model is measured as it trains.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fer_lib import paper
from fer_lib.data import FaceData, table2_row
from fer_lib.engine import RunConfig
from fer_lib.engine.records import machine as machine_facts
from fer_lib.engine.optimization import make_optimizer
from fer_lib.engine.precision import resolve_precision
from fer_lib.engine.train import build_all
from fer_lib.models import build_model

MIB = 2**20

# Sec. 3.8 states these two numbers for DAF-MHSCA and nothing about batch size, precision or device.
# The paper's stated point (paper.FIG9), with Table 2's training batch for the arithmetic of the notes.
PAPER_CLAIM = {**paper.FIG9[paper.OURS], "batch_size": table2_row("fer2013")["batch_size"]}


@dataclass(frozen=True)
class Entry:
    """One model to measure: a label, the registered name, its options and its paper input size."""

    label: str
    model: str
    image_size: int
    options: dict[str, Any] = field(default_factory=dict)


# Table 4's rows that remove one component (the full model and our ResNet18 control are measured apart).
ABLATIONS: dict[str, dict[str, bool]] = paper.REMOVALS


def paper_entries() -> list[Entry]:
    """DAF-MHSCA, its Table 4 ablations, DAN, DDAMFN, ResNet18 and the mini-Xception peer, each at its paper size."""
    return [
        Entry("DAF-MHSCA", "daf_mhsca", 224),
        *(Entry(label, "daf_mhsca", 224, opts) for label, opts in ABLATIONS.items()),
        Entry("DAN", "dan", 224),
        Entry("DDAMFN", "ddamfn", 112),
        Entry("ResNet18", "resnet18", 224),
        Entry("mini-Xception (fer)", "mini_xception", 64),
    ]


def as_entry(item: Entry | tuple[str, dict[str, Any]]) -> Entry:
    """Accept an :class:`Entry` or a ``(name, options)`` pair (``options["image_size"]`` or the model's default)."""
    if isinstance(item, Entry):
        return item
    name, options = item
    options = dict(options)
    size = options.pop("image_size", None)
    if size is None:
        size = build_model(name, 7, **options).input_spec.size
    label = name + "".join(f" {k}={v}" for k, v in sorted(options.items()))
    return Entry(label, name, int(size), options)


def machine(device: torch.device | str = "cpu") -> dict[str, Any]:
    """The hardware and software the numbers come from (the record store's description), the load and the date."""
    return {
        **machine_facts(device),
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,  # other programs' share
        "date_utc": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())


def parameter_memory_mb(model: nn.Module) -> float:
    """Bytes of the parameters as stored (fp32: 4 per parameter), in MiB."""
    return sum(p.numel() * p.element_size() for p in model.parameters()) / MIB


def count_macs(model: nn.Module, image_size: int, channels: int = 3, device: torch.device | str = "cpu") -> int:
    """Multiply-accumulates of one forward pass of one image (FLOPs counted by FlopCounterMode / 2)."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, channels, image_size, image_size, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# The run an entry stands for: Table 2's recipe (Adam, lr 1e-4, no weight decay), seed 0.
TABLE2_RUN = RunConfig(dataset="fer2013", recipe="paper", profile="paper")


def _config(entry: Entry) -> RunConfig:
    return replace(TABLE2_RUN, model=entry.model, model_options=dict(entry.options), image_size=entry.image_size)


def _setup(entry: Entry, device: torch.device, num_classes: int = 7) -> tuple[nn.Module, nn.Module, int]:
    """The trainer's model and criterion (uniform class counts) on ``device``; returns the channel count too."""
    cfg = _config(entry)
    classes = tuple(f"class_{i}" for i in range(num_classes))
    empty = torch.zeros(0, dtype=torch.int64)
    data = FaceData("efficiency", classes, torch.zeros(0, 1, 1, 1, dtype=torch.uint8), empty, empty.to(torch.int8))
    model, criterion = build_all(cfg, cfg.plan, data, torch.ones(num_classes))
    criterion.train()
    return model.to(device), criterion.to(device), model.input_spec.channels


def _batch(batch_size: int, channels: int, size: int, device: torch.device, num_classes: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, channels, size, size, generator=g).to(device)
    y = (torch.arange(batch_size) % num_classes).to(device)
    return x, y


class TrainStep:
    """One full training step, callable: forward, the model's own loss, backward, the trainer's optimiser
    (Table 2: Adam, lr 1e-4) at the trainer's precision for ``precision`` (bf16: autocast, channels_last)."""

    def __init__(self, model: nn.Module, criterion: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str = "fp32"):
        self.model, self.criterion, self.x, self.y = model, criterion, x, y
        self.params = [*model.parameters(), *criterion.parameters()]
        self.optimizer = make_optimizer(TABLE2_RUN.plan, model, criterion)
        self.precision, self.precision_note = resolve_precision(precision, x.device)
        if self.precision == "bf16":
            self.x = x.contiguous(memory_format=torch.channels_last)

    def __call__(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        bf16 = self.precision == "bf16"
        with torch.autocast(self.x.device.type, dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = self.criterion(self.model(self.x), self.y).total
        loss.backward()
        self.optimizer.step()

    def resident_bytes(self) -> int:
        """Bytes held between steps: parameters, their gradients and the optimiser's state."""
        tensors = [*self.params, *(p.grad for p in self.params if p.grad is not None)]
        tensors += [v for state in self.optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
        return sum(t.numel() * t.element_size() for t in tensors)


def time_call(fn: Callable[[], Any], steps: int, warmup: int, device: torch.device) -> list[float]:
    """Wall-clock seconds of each of ``steps`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def training_memory_mb(
    model: nn.Module, criterion: nn.Module, x: torch.Tensor, y: torch.Tensor, step: TrainStep | None = None
) -> dict[str, Any]:
    """Training memory of one step at this batch: CUDA allocator peak, or the CPU estimate described above."""
    device = x.device
    step = step or TrainStep(model, criterion, x, y)
    if device.type == "cuda":
        step()  # Adam's state now exists, as in every step after the first
        torch.cuda.synchronize(device)
        baseline = torch.cuda.memory_allocated(device)  # includes other models resident on the device
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        # this model's peak: the rise over the baseline plus what it held before the step
        own = torch.cuda.max_memory_allocated(device) - baseline + step.resident_bytes()
        return {"kind": "cuda_peak", "total_mb": own / MIB}
    param_bytes = sum(p.numel() * p.element_size() for p in step.params)
    param_storages = {p.untyped_storage().data_ptr() for p in step.params}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in param_storages:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = criterion(model(x), y).total
    loss.backward()
    step.optimizer.zero_grad(set_to_none=True)
    activations = sum(saved.values())
    # parameters + gradients + Adam exp_avg and exp_avg_sq = 4 copies of the parameters
    return {
        "kind": "cpu_estimate",
        "total_mb": (4 * param_bytes + activations) / MIB,
        "activations_mb": activations / MIB,
        "params_grads_adam_mb": 4 * param_bytes / MIB,
    }


def _forward_call(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        model.eval()
        with torch.inference_mode():
            model(x)
        model.train()

    return run


def measure(
    entries: Iterable[Entry | tuple[str, dict[str, Any]]], batch_size: int = 8, steps: int = 3, warmup: int = 1,
    device: torch.device | str = "cpu", infer_batches: Sequence[int] = (1, 64), log: Callable[[str], None] | None = None,
    precision: str = "fp32",
) -> list[dict[str, Any]]:
    """Every measure of each model (see the module docstring), all models held at once.

    Timed calls go round-robin over the models (one training step of each, then the next round;
    the same for inference), so that load from other programs on the machine falls on every model
    alike. Times are medians over ``steps`` rounds after ``warmup`` untimed rounds.
    """
    device = torch.device(device)
    say = log or (lambda msg: None)
    benches, rows = [], []
    for item in entries:
        entry = as_entry(item)
        torch.manual_seed(0)
        model, criterion, channels = _setup(entry, device)
        x, y = _batch(batch_size, channels, entry.image_size, device)
        step = TrainStep(model, criterion, x, y, precision)
        row: dict[str, Any] = {
            "label": entry.label, "model": entry.model, "options": dict(entry.options), "image_size": entry.image_size,
            "channels": channels, "params": count_parameters(model), "macs": count_macs(model, entry.image_size, channels, device),
            "param_mb": parameter_memory_mb(model), "train_batch": batch_size, "precision": step.precision,
        }
        memory = training_memory_mb(model, criterion, x, y, step)
        row["train_memory_kind"] = memory.pop("kind")
        row.update({f"train_{k}": v for k, v in memory.items()})
        infer = {b: _forward_call(model, _batch(b, channels, entry.image_size, device)[0]) for b in infer_batches}
        benches.append((step, infer))
        rows.append(row)
        say(f"{entry.label}: built, {row['params'] / 1e6:.2f} M parameters, {row['macs'] / 1e9:.3f} GMACs")

    def rounds(calls: list[Callable[[], None]]) -> list[list[float]]:
        times: list[list[float]] = [[] for _ in calls]
        for r in range(warmup + steps):
            for i, call in enumerate(calls):
                t = time_call(call, 1, 0, device)[0]
                if r >= warmup:
                    times[i].append(t)
        return times

    t0 = time.perf_counter()
    for row, times in zip(rows, rounds([step for step, _ in benches])):
        row["ms_per_iter"] = 1000 * statistics.median(times)
        row["ms_per_iter_min"] = 1000 * min(times)  # the least disturbed step
        row["ms_per_image"] = row["ms_per_iter"] / batch_size
        row["train_step_ms"] = [1000 * t for t in times]
    say(f"training steps timed ({time.perf_counter() - t0:.0f} s)")
    for b in infer_batches:
        t0 = time.perf_counter()
        for row, times in zip(rows, rounds([infer[b] for _, infer in benches])):
            row[f"infer_images_per_s_b{b}"] = b / statistics.median(times)
        say(f"inference at batch {b} timed ({time.perf_counter() - t0:.0f} s)")
    return rows


def step_time_ratio(
    image_size: int = 224, batch_size: int = 8, steps: int = 5, warmup: int = 2, device: torch.device | str = "cpu",
    model: str = "daf_mhsca", options: dict[str, Any] | None = None, reference: str = "resnet18",
) -> dict[str, Any]:
    """Training-step time of ``model`` over that of bare ``reference`` (ResNet18), measured in the same run.

    Steps of the two alternate so that load from other programs hits both alike; each side's median
    is used. Returned beside the ratio of their MACs, the cost one would expect from arithmetic alone.
    """
    device = torch.device(device)
    torch.manual_seed(0)
    sides = {}
    for name, opts in ((model, options or {}), (reference, {})):
        net, criterion, channels = _setup(Entry(name, name, image_size, opts), device)
        x, y = _batch(batch_size, channels, image_size, device)
        sides[name] = (net, TrainStep(net, criterion, x, y), channels)
    for _, step, _ in sides.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(steps):
        for name, (_, step, _) in sides.items():
            times[name] += time_call(step, 1, 0, device)
    ms = {name: 1000 * statistics.median(t) for name, t in times.items()}
    macs = {name: count_macs(net, image_size, channels, device) for name, (net, _, channels) in sides.items()}
    return {
        "model": model, "options": options or {}, "reference": reference, "image_size": image_size,
        "batch_size": batch_size, "steps": steps, "model_ms": ms[model], "reference_ms": ms[reference],
        "ratio": ms[model] / ms[reference],
        "ratio_of_min": min(times[model]) / min(times[reference]),  # the least disturbed step of each
        "mac_ratio": macs[model] / macs[reference],
        "model_step_ms": [1000 * t for t in times[model]], "reference_step_ms": [1000 * t for t in times[reference]],
        **machine(device),
    }


def complexity_table(image_size: int = 224, num_classes: int = 7) -> list[dict[str, Any]]:
    """Parameters and MACs of DAF-MHSCA, each Table 4 ablation and ResNet18 at ``image_size`` (no timing)."""
    entries = [Entry("DAF-MHSCA", "daf_mhsca", image_size),
               *(Entry(label, "daf_mhsca", image_size, opts) for label, opts in ABLATIONS.items()),
               Entry("ResNet18", "resnet18", image_size)]
    rows = []
    for e in entries:
        model = build_model(e.model, num_classes, image_size=image_size, **e.options)
        rows.append({"label": e.label, "model": e.model, "options": e.options, "image_size": image_size,
                     "params": count_parameters(model), "macs": count_macs(model, image_size)})
    base = rows[-1]
    for r in rows:
        r["params_vs_resnet18"] = r["params"] / base["params"]
        r["macs_vs_resnet18"] = r["macs"] / base["macs"]
    return rows
