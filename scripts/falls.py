"""Count the falls and stalls in the finished cpu records, by kind of model and by clipping.

    python scripts/falls.py            # records of the current training code, at the cpu profile's epochs

A fall is a drop of training accuracy of ``FALL_POINTS`` or more from one epoch to the next; a stall, a drop
of validation accuracy that large (``fer_lib.engine.evaluate.largest_drop``). A run can stall without falling:
clipping bounds each step, yet FER2013 seed 2 of the clipped full model lost 6 points of validation accuracy
while its training accuracy crept up. docs/cpu_study.md quotes this script's counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_lib.engine.config import TRAINING_CODE_VERSION  # noqa: E402
from fer_lib.engine.evaluate import FALL_POINTS, largest_drop  # noqa: E402
from fer_lib.engine.recipes import PROFILES  # noqa: E402
from fer_lib.engine.records import read_history, runs_dir  # noqa: E402
from fer_lib.paper import CONTROL_OPTIONS  # noqa: E402


KEYS = ("train_accuracy", "val_accuracy")  # a fall, a stall


def falls(root: Path | None = None, profile: str = "cpu", keys: tuple[str, ...] = KEYS) -> dict[str, list[tuple[str, dict[str, float]]]]:
    """Group -> [(run id, {key: largest drop of that key in points})] over finished DAF-MHSCA records of the
    current training code that trained the profile's epochs, each read once; groups: "attention" /
    "control", each "(clipped)" where grad_clip was set."""
    out: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for run_dir in sorted(runs_dir(root).glob(f"*-daf_mhsca-{profile}-*/")):
        if not (run_dir / "metrics.json").is_file():
            continue
        record = json.loads((run_dir / "config.json").read_text())
        if record.get("code") != TRAINING_CODE_VERSION or record["plan"]["epochs"] != PROFILES[profile].epochs:
            continue
        group = "control" if record["config"]["model_options"] == CONTROL_OPTIONS else "attention"
        group += " (clipped)" if record["plan"].get("grad_clip") is not None else ""
        history = read_history(run_dir)
        out.setdefault(group, []).append((run_dir.name, {key: largest_drop(history, key) for key in keys}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args()
    groups = sorted(falls(profile=args.profile).items())
    for key, verb, what in zip(KEYS, ("fell", "stalled"), ("training", "validation")):
        for group, rows in groups:
            hit = [(rid, drops[key]) for rid, drops in rows if drops[key] >= FALL_POINTS]
            print(f"{group}: {len(hit)} of {len(rows)} runs {verb} (a drop of {what} accuracy of {FALL_POINTS:g} points or more)")
            for rid, d in hit:
                print(f"  {rid}  {d:.1f} points")


if __name__ == "__main__":
    main()
