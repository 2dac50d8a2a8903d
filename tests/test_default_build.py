"""The default build, ``./run_all.sh`` with no arguments: the demo profile, whose DAF-MHSCA learns the built-in faces.

The whole build takes longer than the suite's budget (docs/report.md has its time), so it runs only when asked,
``FER_TEST_DEFAULT_BUILD=1 ./run_tests.sh tests/test_default_build.py``; the suite's end-to-end test builds the
smaller smoke profile (tests/test_notebooks_smoke.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from fer_lib import PROJECT_ROOT
from fer_lib.engine import evidence
from fer_lib.report import build, plan, published, tables

ASK = "FER_TEST_DEFAULT_BUILD"
TIMEOUT_S = 3600


def test_run_all_without_a_profile_builds_the_demo_profile(capsys) -> None:
    assert build.main(["--plan"]) == 0
    ids = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("synthetic-")]
    assert ids and all("-demo-" in i for i in ids)


@pytest.mark.skipif(not os.environ.get(ASK), reason=f"the default build takes about 10 minutes on 2 cores, on top of the suite; {ASK}=1 runs it")
def test_the_default_build_trains_daf_mhsca_to_90_percent_on_the_built_in_faces(tmp_path: Path) -> None:
    out, log = tmp_path / "report", tmp_path / "run_all.log"
    env = {**os.environ, "FER_RESULTS": str(tmp_path / "results"), "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    with open(log, "w") as fh:
        proc = subprocess.run([str(PROJECT_ROOT / "run_all.sh"), "--out", str(out)], cwd=PROJECT_ROOT, env=env,
                              stdout=fh, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, log.read_text()[-4000:]
    table3 = published.load(out, published.Table3)
    row = next(r for r in table3.index.rows if r["Dataset"] == "built-in synthetic faces")
    accuracy = float(row[tables.MEAN].split()[0])
    assert accuracy >= 90.0, row
    meta = json.loads((out / "build.json").read_text())
    assert {c["verdict"] for c in meta["claims"]} == {evidence.SMOKE}  # synthetic numbers judge no claim of the paper
    assert meta["pages"] == {stem: "ok" for stem, _ in plan.NOTEBOOKS}
    print(f"default build: DAF-MHSCA {accuracy:.2f} % on the built-in test faces, {time.time() - t0:.0f} s")
