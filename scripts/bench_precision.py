#!/usr/bin/env python
"""Training images/s of DAF-MHSCA and ResNet18 in fp32 (NCHW) and bf16 autocast (channels_last), one run.

    .venv/bin/python scripts/bench_precision.py                     # the cpu profile's 72 px, batch 128
    .venv/bin/python scripts/bench_precision.py --image-size 224 --batch-size 64 --device cuda

A step is what the trainer does per batch (forward, the model's criterion, backward, AdamW step) on
random input of the given size. The four variants are interleaved round by round, so a change in the
machine's load touches all of them alike; each variant's figure is the median over rounds. The last
line reads ``bf16/fp32 speed-up: DAF-MHSCA X.XXx, ResNet18 Y.YYx``. "ResNet18" is the bare trunk as the
cpu study's control trains it (DAF-MHSCA with AFC, DAF and MHSCA switched off: trunk, GAP, classifier).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_lib import paper  # noqa: E402
from fer_lib.engine.bench import timed_step  # noqa: E402
from fer_lib.losses import build_criterion  # noqa: E402
from fer_lib.models import build_model  # noqa: E402

MODELS = {"DAF-MHSCA": ("daf_mhsca", {}), "ResNet18": ("daf_mhsca", paper.CONTROL_OPTIONS)}


def make_step(name: str, options: dict, size: int, batch: int, bf16: bool, device: torch.device,
              convert: Callable[[torch.nn.Module], None] | None = None) -> Callable[[], float]:
    """A timed training step (seconds) of model ``name`` on random input, built from seed 0; ``convert``
    changes the built model in place first (scripts/bench_small_map.py swaps its layers)."""
    torch.manual_seed(0)
    model = build_model(name, 7, image_size=size, **options).to(device)
    if convert is not None:
        convert(model)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 7, (batch,), device=device)
    with torch.no_grad():
        feat = model(x[:2]).features.shape[1]
    criterion = build_criterion(model.criterion, torch.full((7,), 100), 7, feat).to(device)
    if bf16:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW([*model.parameters(), *criterion.parameters()], 1e-3)

    def step() -> float:
        return timed_step(model, criterion, optimizer, x, y, bf16)

    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=72)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (each runs every variant once)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per variant and round")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    steps = {(label, precision): make_step(*MODELS[label], args.image_size, args.batch_size, precision == "bf16", device)
             for label in MODELS for precision in ("fp32", "bf16")}
    for step in steps.values():  # warm-up: first steps create the kernels
        step()
        step()
    rates: dict[tuple[str, str], list[float]] = {k: [] for k in steps}
    for _ in range(args.rounds):
        for key, step in steps.items():
            rates[key].append(args.steps * args.batch_size / sum(step() for _ in range(args.steps)))
    print(f"{args.image_size} px, batch {args.batch_size}, {torch.get_num_threads()} threads, {device}, torch {torch.__version__}; "
          f"median of {args.rounds} interleaved rounds of {args.steps} steps")
    median = {k: statistics.median(v) for k, v in rates.items()}
    for (label, precision), value in median.items():
        print(f"{label:10s} {precision}: {value:7.1f} img/s  (rounds: {', '.join(f'{r:.0f}' for r in rates[(label, precision)])})")
    speedup = {label: median[(label, "bf16")] / median[(label, "fp32")] for label in MODELS}
    print(f"bf16/fp32 speed-up: DAF-MHSCA {speedup['DAF-MHSCA']:.2f}x, ResNet18 {speedup['ResNet18']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
