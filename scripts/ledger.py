"""Print the claims ledger of a profile from the records at hand, in seconds, without building the report.

    python scripts/ledger.py [--profile cpu] [--datasets fer2013 ferplus]

The rows and verdicts are the report index's own (``fer_lib.report.build.claims_ledger``); nothing is
trained, so a planned run without a record reads "not trained yet".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_lib.report.build import claims_ledger  # noqa: E402
from fer_lib.report.plan import make_plan  # noqa: E402
from fer_lib.report.readme import cell  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--datasets", nargs="+", default=None, help="default: the profile's")
    args = parser.parse_args()
    rows = claims_ledger(make_plan(args.profile, args.datasets, no_train=True))
    print("| claim | source | ours | verdict | why |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {cell(row.claim)} | {cell(row.source)} | {cell(row.ours)} | {row.verdict} | {cell(row.why)} |")


if __name__ == "__main__":
    main()
