#!/usr/bin/env python
"""One 2-thread training process against two 1-thread processes at once: which trains more images per second.

    .venv/bin/python scripts/bench_workers.py              # the study's DAF-MHSCA step, 72 px, batch 128, bf16
    .venv/bin/python scripts/bench_workers.py --fp32 --rounds 3

Decides how to lay out ``scripts/cpu_study.py`` workers on a 2-core machine (docs/cpu_study.md). Each process
builds the study's step (forward, criterion, backward, AdamW on random input, as ``bench_precision.py``),
warms up for two steps and times ``--steps``; the two 1-thread processes run side by side. Rounds alternate
the layouts, so a change in the machine's load touches both. Run it with nothing else training.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, torch
sys.path.insert(0, {root!r})
torch.set_num_threads({threads})
from scripts.bench_precision import make_step
step = make_step("daf_mhsca", {{"head_gate": "channel_sum"}}, {size}, {batch}, {bf16}, torch.device("cpu"))
step(); step()
print({steps} * {batch} / sum(step() for _ in range({steps})))
"""


def images_per_second(processes: int, threads: int, args: argparse.Namespace) -> list[float]:
    """Each process's training images/s, the ``processes`` running at once with ``threads`` threads each."""
    code = CHILD.format(root=str(ROOT), threads=threads, size=args.image_size, batch=args.batch_size,
                        bf16=not args.fp32, steps=args.steps)
    children = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
                for _ in range(processes)]
    return [float(child.communicate()[0]) for child in children]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=72)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fp32", action="store_true", help="fp32 NCHW instead of bf16 autocast, channels_last")
    args = parser.parse_args()
    print(f"DAF-MHSCA step, {args.image_size} px, batch {args.batch_size}, {'fp32' if args.fp32 else 'bf16'}, "
          f"{args.steps} timed steps per process")
    for r in range(args.rounds):
        one = images_per_second(1, 2, args)[0]
        two = images_per_second(2, 1, args)
        print(f"round {r}: one 2-thread process {one:.1f} img/s; two 1-thread processes "
              f"{two[0]:.1f} + {two[1]:.1f} = {sum(two):.1f} img/s ({sum(two) / one:.2f}x)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
