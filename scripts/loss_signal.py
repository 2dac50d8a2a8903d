#!/usr/bin/env python
"""How hard each loss term pushes on x_F' at initialisation, under each reading of the head map (Eq. 9).

    .venv/bin/python scripts/loss_signal.py [--image-size 72] [--batch 32] [--seeds 3]

For ``head_gate`` "elementwise" (Eq. 9 as printed: a head map is the channel mean of 512 sigmoid gates)
and "channel_sum" (DAN's one sigmoid map per head), prints the gradient norms that L_wce and
theta * L_mhv send into x_F' (the criterion's own probes, as the trainer records them every 50 steps),
their ratio, and how much the head maps vary. Random input; random initialisation; fp32.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_lib.losses import build_criterion  # noqa: E402
from fer_lib.models import build_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=72)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.image_size, args.image_size)
    y = torch.randint(0, 7, (args.batch,))
    for gate in ("elementwise", "channel_sum"):
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            model = build_model("daf_mhsca", 7, image_size=args.image_size, head_gate=gate).train()
            criterion = build_criterion("daf_mhsca", torch.full((7,), 100), 7, 512)
            criterion.probe_grads = True
            out = model(x)
            parts = criterion(out, y).parts
            wce, mhv = float(parts["grad_wce"]), float(parts["grad_mhv"])
            maps = out.head_maps.detach()
            print(f"head_gate={gate:11s} seed {seed}: |dL_wce/dx_F'| {wce:.2e}  |d(theta L_mhv)/dx_F'| {mhv:.2e}  "
                  f"ratio {wce / max(mhv, 1e-30):7.1f}  head-map std {float(maps.std()):.4f}  "
                  f"variance across heads {float(maps.var(dim=1).mean()):.2e}")


if __name__ == "__main__":
    main()
