"""README.md's generated blocks say what the committed records say (``scripts/readme_summary.py`` writes them)."""

from __future__ import annotations

import re

import pytest

from fer_lib import PROJECT_ROOT
from fer_lib.data import data_root
from fer_lib.report.readme import ledger_section, markers

pytestmark = pytest.mark.realdata


def test_readme_ledger_block_is_the_ledger_of_the_committed_records() -> None:
    for name in ("fer2013", "ferplus"):
        if not (data_root() / name).exists():
            pytest.skip(f"{data_root() / name} not found: the ledger judges FER2013 and FERPlus records against their data")
    from fer_lib.report.build import claims_ledger
    from fer_lib.report.plan import make_plan

    start, end = markers("ledger:cpu")
    block = re.search(re.escape(start) + r"\n(.*?)" + re.escape(end), (PROJECT_ROOT / "README.md").read_text(), re.S).group(1)
    command = "python scripts/readme_summary.py --ledger --profile cpu --datasets fer2013 ferplus"
    rows = claims_ledger(make_plan("cpu", ["fer2013", "ferplus"], no_train=True))
    assert block == ledger_section(rows, command), f"README.md's ledger is out of date: run {command}"
