"""The paired difference of two lists of finished runs, paired in the order given, by the report's rule.

    python scripts/paired.py fer2013-daf_mhsca-cpu-c743fa9d23 fer2013-daf_mhsca-cpu-4199d68f8e \
        --vs fer2013-daf_mhsca-cpu-cf2b159191 fer2013-daf_mhsca-cpu-016bb9db82

For comparisons the ledger does not make (its rows pair the study's own runs), e.g. the same two configs
within one precision, or a run trained by hand against a study run. Trains nothing; a run without its
predictions.json (the test faces it got right) gets one written from its checkpoints first (a test pass per
stored checkpoint). A is judged against B with direction +1 ("A beats B"): supported, contradicted or
inconclusive as on the report's ledger.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_lib.claims import compare  # noqa: E402
from fer_lib.engine import ConfigError, runs_dir  # noqa: E402
from fer_lib.engine.predictions import HOW_TO_WRITE, PREDICTIONS, write_predictions  # noqa: E402
from fer_lib.engine.records import RunRecord, load_record  # noqa: E402


def records(ids: list[str]) -> list[RunRecord]:
    found = []
    for run_id in ids:
        record = load_record(runs_dir() / run_id)
        if record is None:
            raise SystemExit(f"no finished run {run_id} under {runs_dir()}: see scripts/cpu_study.py --list")
        found.append(record)
    return found


def ensure_predictions(record: RunRecord) -> None:
    """Write the run's predictions.json from its checkpoints where it has none (exits where it cannot)."""
    if (record.dir / PREDICTIONS).exists():
        return
    print(f"{record.id}: no {PREDICTIONS}; writing it from its checkpoints", flush=True)
    try:
        write_predictions(record.dir, record)
    except (ConfigError, FileNotFoundError, RuntimeError) as err:
        raise SystemExit(f"{record.id}: no {PREDICTIONS}, and it cannot be written here: {err}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", nargs="+", help="run ids of config A, one per seed")
    parser.add_argument("--vs", nargs="+", required=True, help="run ids of config B, in the same seed order")
    args = parser.parse_args()
    if len(args.a) != len(args.vs):
        raise SystemExit(f"{len(args.a)} runs of A against {len(args.vs)} of B: pair them one to one, in seed order")
    xs, ys = records(args.a), records(args.vs)
    for record in xs + ys:
        ensure_predictions(record)
    for x, y in zip(xs, ys):
        if x.config.seed != y.config.seed:
            print(f"note: {x.id} (seed {x.config.seed}) is paired with {y.id} (seed {y.config.seed})")
    text, v = compare(xs, ys, +1, False, ("A", "B"))
    if v.diff is None:
        raise SystemExit(f"{v.why}: {HOW_TO_WRITE}")
    print(text)
    print(f"A beats B: {v.label} ({v.why})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
