#!/usr/bin/env python
"""Measure the engine's training images/s against the bare model step and write it into docs/engine.md.

    .venv/bin/python scripts/bench_engine.py                 # cpu: DAF-MHSCA at the cpu profile's 64 px
    .venv/bin/python scripts/bench_engine.py --device cuda   # GPU: 224 px, batch 256

The table between the ``bench`` markers of docs/engine.md is replaced by this run's numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_lib.engine.bench import bench_engine  # noqa: E402
from fer_lib.engine.recipes import PAPER_IMAGE_SIZE, PROFILES  # noqa: E402

DOC = ROOT / "docs" / "engine.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def render(r: dict, command: str) -> str:
    goal = "meets" if r["ratio"] >= 0.9 else "misses"
    return "\n".join(
        [
            START,
            f"Measured {r['date_utc']} on {r['device']} ({r['cpu']}, {r['torch_threads']} threads, torch {r['torch']}) by `{command}`:",
            "",
            "| | images/s |",
            "|---|---|",
            f"| bare step (forward, loss, backward, Adam step on ready tensors), median epoch | {r['bare_images_per_s']:.1f} |",
            f"| engine (index, augment on device, same step, logging), median epoch | {r['engine_images_per_s']:.1f} |",
            f"| **ratio engine / bare**, median of adjacent pairs | **{r['ratio']:.2f}** ({goal} the 0.9 goal) |",
            "",
            f"{r['model']} at {r['image_size']} px, batch {r['batch_size']}, {r['steps_per_epoch']} steps per epoch, "
            f"48 x 48 procedural grey faces (FER2013's format), augmentation by {r['augment']}. "
            f"{r['epochs']} engine epochs alternate with {r['epochs']} bare ones; the first pair warms up "
            f"(engine epochs {', '.join(f'{v:.1f}' for v in r['engine_epochs'])}; bare "
            f"{', '.join(f'{v:.1f}' for v in r['bare_epochs'])}). 1-minute load average of the machine "
            f"{r['load_average'][0]:.1f} at the start and {r['load_average'][1]:.1f} at the end on {r['cpu_count']} cores "
            f"(above the core count, other programs shared them and slowed both sides).",
            END,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="daf_mhsca")
    parser.add_argument("--image-size", type=int, default=None, help="default: 64 on cpu (the cpu profile), 224 on cuda")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 64 on cpu, 256 on cuda")
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch (default 3 on cpu, 20 on cuda)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/engine.md alone")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    if not cuda:
        torch.set_num_threads(min(torch.get_num_threads(), 2))
    size = args.image_size or (PAPER_IMAGE_SIZE if cuda else PROFILES["cpu"]["image_size"])
    batch = args.batch_size or (256 if cuda else 64)
    steps = args.steps or (20 if cuda else 3)
    result = bench_engine(args.model, size, batch, steps, args.epochs, args.device)
    print(json.dumps(result, indent=1))
    if not args.no_write:
        command = "python scripts/bench_engine.py " + " ".join(sys.argv[1:])
        text = DOC.read_text()
        block = render(result, command.strip())
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S) if START in text else text + "\n" + block + "\n"
        DOC.write_text(text)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
