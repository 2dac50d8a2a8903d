"""Copy a built report's summary table (results/report/<profile>/summary.md) into README.md, with the
date, machine and command of that build, between the markers of its section.

    python scripts/readme_summary.py [--profile cpu]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from fer_lib import PROJECT_ROOT
from fer_lib.report.plan import REPORT_DIR


def section(report_dir: Path) -> str:
    """The README block: where the table comes from, then the table exactly as the report wrote it."""
    meta = json.loads((report_dir / "build.json").read_text())
    failed = [stem for stem, state in meta.get("pages", {}).items() if state != "ok"]
    lines = [f"Built {meta['started (UTC)']} UTC in {meta['duration']} on {meta['machine']}, with `{meta['command']}`.",
             f"Scope: {meta['scope']}.", ""]
    if failed:
        lines += [f"Pages that did not render in this build: {', '.join(failed)}.", ""]
    return "\n".join(lines) + "\n" + (report_dir / "summary.md").read_text()  # a blank line before the table


def update_readme(readme: Path, profile: str, report_dir: Path) -> None:
    """Replace what stands between ``<!-- summary:PROFILE:start -->`` and its end marker with :func:`section`."""
    start, end = f"<!-- summary:{profile}:start -->", f"<!-- summary:{profile}:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme.name} has no {start} ... {end} markers: add them where the table should go")
    if not (report_dir / "build.json").exists():
        raise SystemExit(f"{report_dir} holds no finished build: run ./run_all.sh --profile {profile} first")
    block = f"{start}\n{section(report_dir)}{end}"
    readme.write_text(re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args()
    update_readme(PROJECT_ROOT / "README.md", args.profile, REPORT_DIR / args.profile)
    print(f"README.md: {args.profile} summary updated from {REPORT_DIR / args.profile}")


if __name__ == "__main__":
    main()
