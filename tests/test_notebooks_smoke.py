"""The report end to end, in the way recommenders tests its notebooks: one smoke build per test session
(``run_all.sh --profile smoke`` from an empty results folder), then each notebook's published result read
back and asserted; and a failing notebook."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from fer_lib import PROJECT_ROOT, explore, paper
from fer_lib.engine import evidence
from fer_lib.report import build, plan, published, site, tables

EXTERNAL = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//|<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//|@import\s+url\(\s*[\"']?https?:", re.I)
STEMS = [stem for stem, _ in plan.NOTEBOOKS]
# 7 minutes measured on a 2-core AVX2-only EPYC in fp32 (docs/report.md); stuck beyond this.
TIMEOUT_S = 1500


@pytest.fixture(scope="session")
def smoke_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    """One smoke build for the session: (report folder, build log, seconds)."""
    tmp = tmp_path_factory.mktemp("smoke")
    out = tmp / "report"
    env = {**os.environ, "FER_RESULTS": str(tmp / "results"), "PYTHONUNBUFFERED": "1"}
    log = tmp / "run_all.log"
    t0 = time.time()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run([str(PROJECT_ROOT / "run_all.sh"), "--profile", "smoke", "--out", str(out)],
                                  cwd=PROJECT_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            progress = [line for line in log.read_text().splitlines() if line.startswith("[report]")]
            pytest.fail(f"run_all.sh --profile smoke took over {TIMEOUT_S // 60} minutes; reached:\n" + "\n".join(progress[-12:]))
    text = log.read_text()
    assert proc.returncode == 0, text[-4000:]
    return out, text, time.time() - t0


@pytest.mark.slow
def test_smoke_report_end_to_end(smoke_report: tuple[Path, str, float], tmp_path: Path, script) -> None:
    """Trains the smoke runs, executes every notebook, renders every page: under 10 minutes on 2 cores."""
    out, text, seconds = smoke_report
    n = len(plan.NOTEBOOKS)
    assert f"[report] notebook {n}/{n} {STEMS[-1]}: done" in text  # progress is printed
    assert text.index("[report] run 1/") < text.index("[report] notebook 1/")  # every run is trained before any notebook
    assert (out / site.STYLESHEET).exists() and (out / site.NOTEBOOK_STYLESHEET).exists()
    for stem in STEMS:
        path = out / f"{stem}.html"
        page = path.read_text(encoding="utf-8")
        assert "<img" in page, f"{stem}: no figure"
        for src in re.findall(r'<img[^>]*src="(figures/[^"]+)"', page):
            assert (out / src).exists(), f"{stem}: linked figure {src} missing"
        for tag in re.findall(r"<img\b[^>]*>", page):  # nbconvert fills a missing alt with a placeholder
            alt = re.search(r'\balt="([^"]*)"', tag)
            assert alt and alt.group(1).strip() and "No description" not in alt.group(1), f"{stem}: an image without alt text"
        assert not EXTERNAL.search(page), f"{stem}: external resource {EXTERNAL.search(page).group(0)}"
        assert "SMOKE PROFILE" in page and "Traceback" not in page, stem
        assert path.stat().st_size < site.MAX_PAGE_BYTES, f"{stem}: {path.stat().st_size} bytes"
        assert f'href="{site.STYLESHEET}"' in page and 'class="site-nav"' in page and "<style" not in page, stem
        assert "Rebuild this" in page, stem
        assert site.stray_outputs(nbformat.read(str(out / f"{stem}.ipynb"), as_version=4)) == [], stem  # no stdout, stderr, bare value
    walkthrough = (out / "11_walkthrough.html").read_text(encoding="utf-8")
    for n in range(1, 18):
        block = walkthrough.split(f'id="eq-{n}"')[1].split('class="equation"')[0]
        assert "<math" in block, f"walkthrough: Eq. {n} is not typeset"
    explorer = (out / "09_explore_heads.html").read_text(encoding="utf-8")
    assert f'id="{explore.STATIC_MARKER}"' in explorer  # the explorer page is never blank without a kernel
    notes = (out / "reproduction_notes.html").read_text(encoding="utf-8")
    assert "What this build's runs say" in notes and not EXTERNAL.search(notes)

    index = (out / "index.html").read_text(encoding="utf-8")
    assert not EXTERNAL.search(index)
    meta_claims = json.loads((out / "build.json").read_text())["claims"]
    ledger = index.split('<table class="ledger">')[1].split("</table>")[0]
    assert len(re.findall(r"<tr class=", ledger)) == len(meta_claims) > 10  # one row per claim
    assert {c["verdict"] for c in meta_claims} == {evidence.SMOKE}  # smoke numbers judge nothing
    for verdict in (evidence.SUPPORTED, evidence.CONTRADICTED):
        assert f">{verdict}<" not in index
    body = index.split('<table class="summary">')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)[1:]
    datasets = [re.search(r"<td>(.*?)</td>", r).group(1) for r in rows]
    assert datasets == [*paper.DATASETS.values(), "built-in synthetic faces"]
    for stem in STEMS:
        assert f'href="{stem}.html"' in index
    assert index.count('class="ok"') == len(plan.NOTEBOOKS)
    assert (out / "summary.md").read_text().count("\n") == 2 + 6
    meta = json.loads((out / "build.json").read_text())
    assert meta["pages"] == {stem: "ok" for stem in STEMS} and meta["command"].startswith("run_all.sh --profile smoke")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- summary:smoke:start -->\nold\n<!-- summary:smoke:end -->\ntail\n")
    script("readme_summary").update_readme(readme, "smoke", out)  # the README's table is the report's own summary.md
    readme_text = readme.read_text()
    assert (out / "summary.md").read_text() in readme_text and meta["machine"] in readme_text and "old" not in readme_text
    print(f"smoke report end to end: {seconds:.0f} s")


def _pct(value: float | None) -> bool:
    return value is not None and 0.0 <= value <= 100.0


@pytest.mark.slow
@pytest.mark.parametrize("kind", published.RESULTS, ids=[k.STEM for k in published.RESULTS])
def test_each_notebook_publishes_its_result(smoke_report: tuple[Path, str, float], kind: type) -> None:
    """Each notebook's declared result, read back from the build and checked: types, ranges, one row per dataset."""
    out = smoke_report[0]
    result = published.load(out, kind)
    assert isinstance(result, kind), f"{kind.STEM} published nothing"
    report_plan = plan.ReportPlan.from_json((out / plan.PLAN_FILE).read_text())
    ran = report_plan.ran
    if kind is published.Table3:
        assert [r["Dataset"] for r in result.index.rows] == [s.label for s in report_plan.statuses]  # one row per dataset
        assert result.index.columns[0] == "Dataset" and set(result.data) == set(ran) == {plan.SYNTHETIC}
        assert set(result.runs) <= {c.id for c in report_plan.configs()} and result.rafdb_recipes == {}
        synthetic = next(r for r in result.index.rows if r["Dataset"] == "built-in synthetic faces")
        assert _pct(float(synthetic[tables.MEAN].split()[0])) and synthetic[tables.GAP] == "no published value"
    elif kind is published.Table4:
        assert set(result.ablations) == set(ran) and set(result.ablations[plan.SYNTHETIC]) == set(paper.ABLATION_OPTIONS)
        assert all(_pct(v) for v in result.ablations[plan.SYNTHETIC].values()) and result.readings == {}  # smoke: no readings
    elif kind is published.Table5:
        (series,) = result.series.values()
        assert series.x == [float(h) for h in plan.SCOPES["smoke"].heads] and all(_pct(m) for m in series.mean)
    elif kind is published.Fig5:
        assert result.dataset == report_plan.figure and result.per_class_recall["columns"] == list(paper.FIGURE_METHODS)
        assert all(0 <= v <= 100 for row in result.per_class_recall["data"] for v in row)
    elif kind is published.Fig6:
        assert set(result.silhouette) == set(paper.FIGURE_METHODS)
        assert all(math.isnan(v) or -1 <= v <= 1 for v in result.silhouette.values())
    elif kind is published.Fig7:
        assert len(result.faces) == 7 and all(0 <= k <= len(result.faces) for k in result.correct.values())
    elif kind is published.Fig8:
        assert result.theta.x == list(plan.SCOPES["smoke"].thetas) and all(_pct(m) for m in result.theta.mean)
    elif kind is published.Fig9:
        assert {r["label"] for r in result.rows} == {*paper.FIGURE_METHODS, "ResNet18"}
        assert all(r["params"] > 0 and r["ms_per_iter"] > 0 for r in result.rows) and result.machine["cpu"]
    elif kind is published.Explore:
        assert set(result.shown) == set(paper.FIGURE_METHODS) and result.untrained == []
    elif kind is published.Attributions:
        assert result.synthetic and result.dataset == plan.SYNTHETIC
        assert {r.model for r in result.regions if r.family == "attention"} == set(paper.FIGURE_METHODS)
        assert all(0 <= r.mass <= 1 and 0 < r.area < 1 and r.lift >= 0 for r in result.regions)
    elif kind is published.Walkthrough:
        assert result.same_logits and result.max_difference < 1e-5 and not result.untrained and result.steps > 10


def test_readme_summary_needs_its_markers_and_a_finished_build(tmp_path: Path, script) -> None:
    readme_summary = script("readme_summary").update_readme
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="no <!-- summary:cpu:start -->"):
        readme_summary(readme, "cpu", tmp_path)
    readme.write_text("<!-- summary:cpu:start -->\n<!-- summary:cpu:end -->\n")
    with pytest.raises(SystemExit, match="no finished build"):
        readme_summary(readme, "cpu", tmp_path)
    (tmp_path / "build.json").write_text(json.dumps({"started (UTC)": "2026-01-01 00:00", "duration": "9 s", "machine": "m",
                                                     "command": "c", "scope": "s", "pages": {"01": "ok", "02": "failed"}}))
    (tmp_path / "summary.md").write_text("| a |\n")
    readme_summary(readme, "cpu", tmp_path)
    assert "Built 2026-01-01 00:00 UTC in 9 s on m, with `c`." in readme.read_text()
    assert "did not render in this build: 02." in readme.read_text() and "| a |\n<!-- summary:cpu:end -->" in readme.read_text()


def test_failing_notebook_stops_the_build_and_keeps_earlier_pages(tmp_path: Path, write_notebook) -> None:
    src = tmp_path / "notebooks"
    src.mkdir()
    write_notebook(src / "a_ok.ipynb", "fine = ('fine', profile)")  # a page may not print: the build fails on stdout
    write_notebook(src / "b_bad.ipynb", "raise ValueError('broken on purpose')")
    write_notebook(src / "c_never.ipynb", "print('never')")
    out = tmp_path / "out"
    lines: list[str] = []
    with pytest.raises(build.NotebookFailed) as err:
        build.build("smoke", out_dir=out, pretrain=False, say=lines.append, notebook_dir=src, jobs=1,
                    notebook_list=(("a_ok", "A"), ("b_bad", "B"), ("c_never", "C")))  # one at a time: c never starts
    assert err.value.stem == "b_bad" and "ValueError: broken on purpose" in err.value.error
    assert (out / "a_ok.html").exists() and not (out / "c_never.html").exists()
    assert "broken on purpose" in (out / "b_bad.html").read_text()  # the page shows the error
    assert (out / plan.PLAN_FILE).exists()  # the plan the notebooks read
    index = (out / "index.html").read_text()
    assert "failed: ValueError: broken on purpose" in index and "not reached" in index
    assert any(line.startswith("[report] FAILED b_bad: ValueError: broken on purpose") for line in lines)
    # The command line reports it and exits non-zero; the existing report is not overwritten.
    proc = subprocess.run([sys.executable, "-m", "fer_lib.report", "--profile", "smoke", "--out", str(out)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--force" in proc.stderr


def test_every_report_notebook_declares_the_report_parameters() -> None:
    """papermill must parse each parameters cell (a comment it cannot read hides the names after it)."""
    from papermill.inspection import inspect_notebook

    for stem in STEMS:
        names = set(inspect_notebook(str(PROJECT_ROOT / "notebooks" / f"{stem}.ipynb")))
        assert {"profile", "datasets", "seeds", "device", "output_dir", "plan", "no_train"} <= names, stem
