"""README.md's generated blocks: text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` that a script
writes, never a person: a built report's summary table (``summary:PROFILE``) and the claims ledger's judged
rows (``ledger:PROFILE``). ``scripts/readme_summary.py`` writes them."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Sequence

from fer_lib.claims import Row
from fer_lib.engine import evidence

JUDGED = (evidence.SUPPORTED, evidence.CONTRADICTED, evidence.INCONCLUSIVE)


def cell(text: str) -> str:
    """``text`` as one cell of a markdown table."""
    return text.replace("|", "/").replace("\n", " ")


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def _pattern(name: str) -> re.Pattern[str]:
    start, end = markers(name)
    return re.compile(re.escape(start) + r"\n(.*?)" + re.escape(end), re.S)


def read_block(readme: Path, name: str) -> str:
    """What stands between the markers of ``name`` in ``readme``; stops with a message where they are missing."""
    found = _pattern(name).search(readme.read_text())
    if found is None:
        start, end = markers(name)
        raise SystemExit(f"{readme.name} has no {start} ... {end} markers: add them where the block should go")
    return found.group(1)


def replace_block(readme: Path, name: str, block: str) -> None:
    """Replace what stands between the markers of ``name`` in ``readme`` with ``block``."""
    read_block(readme, name)  # the markers' check
    start, end = markers(name)
    readme.write_text(_pattern(name).sub(lambda _: f"{start}\n{block}{end}", readme.read_text()))


def summary_section(report_dir: Path) -> str:
    """A build's block: where the table comes from, then the table exactly as the report wrote it."""
    meta = json.loads((report_dir / "build.json").read_text())
    failed = [stem for stem, state in meta.get("pages", {}).items() if state != "ok"]
    lines = [f"Built {meta['started (UTC)']} UTC in {meta['duration']} on {meta['machine']}, with `{meta['command']}`.",
             f"Scope: {meta['scope']}.", ""]
    if failed:
        lines += [f"Pages that did not render in this build: {', '.join(failed)}.", ""]
    return "\n".join(lines) + "\n" + (report_dir / "summary.md").read_text()  # a blank line before the table


def ledger_command(profile: str, datasets: Sequence[str] | None) -> str:
    """The command that writes the ``ledger:PROFILE`` block."""
    return f"python scripts/readme_summary.py --ledger --profile {profile}" + (f" --datasets {' '.join(datasets)}" if datasets else "")


def ledger_block(profile: str, datasets: Sequence[str] | None) -> str:
    """The ``ledger:PROFILE`` block judged from the records at hand (nothing is trained)."""
    from fer_lib.report.build import claims_ledger  # imports the notebooks' machinery: only where it is needed
    from fer_lib.report.plan import make_plan

    return ledger_section(claims_ledger(make_plan(profile, datasets, no_train=True)), ledger_command(profile, datasets))


def ledger_section(rows: Sequence[Row], command: str) -> str:
    """A ledger's block: its judged rows (supported, contradicted, inconclusive) as a table, then a count of the
    other rows by verdict."""
    judged = [r for r in rows if r.verdict in JUDGED]
    rest = Counter(r.verdict for r in rows if r.verdict not in JUDGED)
    lines = [f"Generated from the committed records by `{command}`; the report's index carries the whole ledger, "
             "with the page that shows each claim.", "", "| claim | ours | verdict | why |", "|---|---|---|---|"]
    lines += [f"| {cell(r.claim)} | {cell(r.ours)} | {r.verdict} | {cell(r.why)} |" for r in judged]
    if not judged:
        lines.append("| no claim judged yet | | | |")
    if rest:
        lines += ["", "Other claims: " + "; ".join(f"{rest[label]} {label}" for label in evidence.LABELS if rest[label]) + "."]
    return "\n".join(lines) + "\n"
