"""README.md's generated blocks say what the committed records say (``scripts/readme_summary.py`` writes them)."""

from __future__ import annotations

import pytest

from fer_lib import PROJECT_ROOT
from fer_lib.data import data_root
from fer_lib.report.readme import ledger_block, ledger_command, read_block

pytestmark = pytest.mark.realdata

DATASETS = ["fer2013", "ferplus"]


def test_readme_ledger_block_is_the_ledger_of_the_committed_records() -> None:
    for name in DATASETS:
        if not (data_root() / name).exists():
            pytest.skip(f"{data_root() / name} not found: the ledger judges FER2013 and FERPlus records against their data")
    block = read_block(PROJECT_ROOT / "README.md", "ledger:cpu")
    assert block == ledger_block("cpu", DATASETS), f"README.md's ledger is out of date: run {ledger_command('cpu', DATASETS)}"
