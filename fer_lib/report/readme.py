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


def require_markers(readme: Path, name: str) -> None:
    """Stop with a message where ``readme`` lacks the block's markers."""
    start, end = markers(name)
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme.name} has no {start} ... {end} markers: add them where the block should go")


def replace_block(readme: Path, name: str, block: str) -> None:
    """Replace what stands between the markers of ``name`` in ``readme`` with ``block``."""
    require_markers(readme, name)
    start, end = markers(name)
    new = f"{start}\n{block}{end}"
    readme.write_text(re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: new, readme.read_text(), flags=re.S))


def summary_section(report_dir: Path) -> str:
    """A build's block: where the table comes from, then the table exactly as the report wrote it."""
    meta = json.loads((report_dir / "build.json").read_text())
    failed = [stem for stem, state in meta.get("pages", {}).items() if state != "ok"]
    lines = [f"Built {meta['started (UTC)']} UTC in {meta['duration']} on {meta['machine']}, with `{meta['command']}`.",
             f"Scope: {meta['scope']}.", ""]
    if failed:
        lines += [f"Pages that did not render in this build: {', '.join(failed)}.", ""]
    return "\n".join(lines) + "\n" + (report_dir / "summary.md").read_text()  # a blank line before the table


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
