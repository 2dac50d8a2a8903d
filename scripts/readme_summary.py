"""Write one of README.md's generated blocks (``fer_lib.report.readme``): a built report's summary table, or
the claims ledger's judged rows from the records at hand.

    python scripts/readme_summary.py [--profile cpu]                       # the built report's summary.md
    python scripts/readme_summary.py --ledger --datasets fer2013 ferplus   # the ledger's judged claims, in seconds
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_lib import PROJECT_ROOT  # noqa: E402
from fer_lib.report.plan import REPORT_DIR  # noqa: E402
from fer_lib.report.readme import ledger_block, read_block, replace_block, summary_section  # noqa: E402


def update_readme(readme: Path, profile: str, report_dir: Path) -> None:
    """Replace the ``summary:PROFILE`` block with the summary of the build in ``report_dir``."""
    read_block(readme, f"summary:{profile}")  # missing markers are said before a missing build
    if not (report_dir / "build.json").exists():
        raise SystemExit(f"{report_dir} holds no finished build: run ./run_all.sh --profile {profile} first")
    replace_block(readme, f"summary:{profile}", summary_section(report_dir))


def update_ledger(readme: Path, profile: str, datasets: Sequence[str] | None) -> None:
    """Replace the ``ledger:PROFILE`` block with the ledger judged from the records at hand (nothing is trained)."""
    read_block(readme, f"ledger:{profile}")  # missing markers are said before the ledger's seconds of work
    replace_block(readme, f"ledger:{profile}", ledger_block(profile, datasets))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--ledger", action="store_true", help="write the ledger's judged claims, not a build's summary")
    parser.add_argument("--datasets", nargs="+", default=None, help="with --ledger: the datasets judged (default: the profile's)")
    args = parser.parse_args()
    readme = PROJECT_ROOT / "README.md"
    if args.ledger:
        update_ledger(readme, args.profile, args.datasets)
        print(f"README.md: the {args.profile} ledger's judged claims, from the records under results/runs/")
    else:
        update_readme(readme, args.profile, REPORT_DIR / args.profile)
        print(f"README.md: {args.profile} summary updated from {REPORT_DIR / args.profile}")


if __name__ == "__main__":
    main()
