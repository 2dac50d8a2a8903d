"""Write the efficiency table (Figure 9) or the model-complexity table, measured on this machine.

    python scripts/efficiency_table.py                 # results/efficiency_<device>.{md,csv,json}
    python scripts/efficiency_table.py --complexity    # docs/model_complexity.md (params and MACs only)

The full table measures DAF-MHSCA, its four ablations, DAN, DDAMFN, ResNet18 and the mini-Xception
peer at their paper input sizes, then times DAF-MHSCA against bare ResNet18 in alternating steps.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from fer_lib import PROJECT_ROOT, RESULTS_DIR
from fer_lib import efficiency as E


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--complexity", action="store_true", help="write docs/model_complexity.md instead")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=8, help="training batch for ms/iter and memory")
    p.add_argument("--steps", type=int, default=3, help="timed steps per measure (median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--ratio-steps", type=int, default=5, help="alternating steps of the DAF-MHSCA / ResNet18 ratio (0: skip)")
    p.add_argument("--only", nargs="*", help="labels to measure (default: all)")
    p.add_argument("--image-size", type=int, help="override every model's paper input size (for quick checks)")
    p.add_argument("--out", type=Path, help="output stem (default results/efficiency_<device>)")
    p.add_argument("--render", action="store_true", help="only rewrite the .md from the stem's existing .json")
    return p.parse_args(argv)


def write_complexity(out: Path, image_size: int) -> None:
    rows = E.complexity_table(image_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(E.complexity_markdown(rows))
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.complexity:
        write_complexity(args.out or PROJECT_ROOT / "docs" / "model_complexity.md", args.image_size or 224)
        return 0
    device = torch.device(args.device)
    if args.render:
        stem = args.out or RESULTS_DIR / f"efficiency_{device.type}"
        saved = json.loads(stem.with_suffix(".json").read_text())
        warmup = saved["settings"]["warmup"]
        stem.with_suffix(".md").write_text(E.results_markdown(saved["rows"], saved["machine"], saved["step_time_ratio"], warmup))
        print(f"wrote {stem}.md from {stem}.json")
        return 0
    entries = E.paper_entries()
    if args.only:
        entries = [e for e in entries if e.label in args.only]
        if not entries:
            raise SystemExit(f"no model labelled {args.only}; choose from {[e.label for e in E.paper_entries()]}")
    if args.image_size:
        entries = [dataclasses.replace(e, image_size=args.image_size) for e in entries]
    t0 = time.perf_counter()
    rows = E.measure(entries, args.batch_size, args.steps, args.warmup, device, log=print)
    ratio = None
    if args.ratio_steps > 0:
        ratio = E.step_time_ratio(args.image_size or 224, args.batch_size, args.ratio_steps, args.warmup, device)
        print(f"DAF-MHSCA / ResNet18 step time: {ratio['ratio']:.2f}x (MACs {ratio['mac_ratio']:.2f}x)")
    env = E.machine(device)
    stem = args.out or RESULTS_DIR / f"efficiency_{device.type}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(E.results_markdown(rows, env, ratio, args.warmup))
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "complexity", "render")}
    stem.with_suffix(".json").write_text(json.dumps(
        {"machine": env, "settings": settings, "rows": rows, "step_time_ratio": ratio,
         "paper_claim": E.PAPER_CLAIM, "notes": E.paper_claim_notes(rows)}, indent=1, default=str) + "\n")
    with stem.with_suffix(".csv").open("w", newline="") as f:
        fields = [k for k in rows[0] if k != "options"] + ["options"]
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "options": json.dumps(r["options"])})
    print(f"wrote {stem}.md/.csv/.json in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
