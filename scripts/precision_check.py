"""The paired fp32 vs bf16 check of docs/cpu_study.md, from the records at hand: one config, the same seeds
trained in both precisions, scored on the same test faces.

    python scripts/precision_check.py                      # the cpu study's headline on FER2013, seeds 0-2
    python scripts/precision_check.py -m use_afc=false -m use_daf=false -m use_mhsca=false   # its control
    python scripts/precision_check.py --dataset ferplus --seed 0 1

The run is named with ``python -m fer_lib train``'s flags (defaults here: profile cpu, seeds 0-2 and, without
``-m``, the headline's ``-m head_gate=channel_sum``).

Trains nothing. For each seed and precision it takes the record of the run with ``precision`` set to that
value, else the study's own run (``precision=auto``) where its env.json says it trained in that precision;
train the missing one with e.g. ``python -m fer_lib train --dataset fer2013 --profile cpu
-m head_gate=channel_sum --set precision=bf16 --seed 1``. Only seeds with both records are paired; the
difference is bf16 - fp32 with the report's paired bootstrap, and a winner is named only by the report's
rule (``evidence.verdict`` through ``claims.compare``, as on the ledger).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_lib.claims import compare  # noqa: E402
from fer_lib.cli import add_config_arguments, configs_from_args  # noqa: E402
from fer_lib.engine import RunConfig, runs_dir  # noqa: E402
from fer_lib.engine.evidence import CONTRADICTED, SUPPORTED  # noqa: E402
from fer_lib.engine.predictions import HOW_TO_WRITE  # noqa: E402
from fer_lib.engine.records import RunRecord, load_record  # noqa: E402
from fer_lib.report.results import accuracy  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def record_in(cfg: RunConfig, precision: str) -> RunRecord | None:
    """The finished record of ``cfg`` trained in ``precision``: set explicitly, or resolved so by ``auto``."""
    explicit = dataclasses.replace(cfg, overrides={**cfg.overrides, "precision": precision})
    for candidate in (explicit, cfg):
        record = load_record(runs_dir() / candidate.id)
        if record is not None and (record.env or {}).get("precision") == precision:
            return record
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_arguments(parser)
    parser.set_defaults(profile="cpu", seed=[0, 1, 2])
    args = parser.parse_args()
    args.model_option = args.model_option or ["head_gate=channel_sum"]
    pairs = []
    print("| seed | fp32 test % | bf16 test % | fp32 run | bf16 run |\n|---|---|---|---|---|")
    for cfg in configs_from_args(args):
        found = {p: record_in(cfg, p) for p in PRECISIONS}
        acc = {p: f"{accuracy(r):.2f}" if r else "-" for p, r in found.items()}
        ids = {p: f"`{r.id}`" if r else "not trained" for p, r in found.items()}
        print(f"| {cfg.seed} | {acc['fp32']} | {acc['bf16']} | {ids['fp32']} | {ids['bf16']} |")
        if all(found.values()):
            pairs.append(found)
    if not pairs:
        print("\nno seed has a record in both precisions: nothing to pair")
        return 1
    text, v = compare([pair["bf16"] for pair in pairs], [pair["fp32"] for pair in pairs], +1, False, ("bf16", "fp32"),
                      note_precision=False)  # every pair mixes precisions: that is the comparison
    if v.diff is None:
        print(f"\n{v.why}: {HOW_TO_WRITE}")
        return 1
    best = {SUPPORTED: "bf16", CONTRADICTED: "fp32"}.get(v.label)  # the rule's verdict of "bf16 beats fp32"
    print(f"\nbf16 - fp32: {text} ({v.diff.method})")
    print(f"by the report's rule: {best + ' is more accurate' if best else 'no precision is more accurate beyond the noise'}"
          f" ({v.why})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
