"""The report end to end: ``run_all.sh --profile smoke`` from an empty results folder, and a failing notebook."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from fer_lib import PROJECT_ROOT, explore, paper, report

EXTERNAL = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//|<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//|@import\s+url\(\s*[\"']?https?:", re.I)


@pytest.mark.slow
def test_smoke_report_end_to_end(tmp_path: Path, script) -> None:
    """Trains the smoke runs, executes every notebook, renders every page: under 10 minutes on 2 cores."""
    out = tmp_path / "report"
    env = {**os.environ, "FER_RESULTS": str(tmp_path / "results"), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "run_all.log"
    t0 = time.time()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run([str(PROJECT_ROOT / "run_all.sh"), "--profile", "smoke", "--out", str(out)],
                                  cwd=PROJECT_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            progress = [line for line in log.read_text().splitlines() if line.startswith("[report]")]
            pytest.fail("run_all.sh --profile smoke took over 10 minutes; reached:\n" + "\n".join(progress[-12:]))
    seconds = time.time() - t0
    text = log.read_text()
    assert proc.returncode == 0, text[-4000:]
    n = len(report.NOTEBOOKS)
    assert f"[report] notebook {n}/{n} {report.NOTEBOOKS[-1][0]}: done" in text  # progress is printed

    for stem, _ in report.NOTEBOOKS:
        html = (out / f"{stem}.html").read_text(encoding="utf-8")
        assert html.count('src="data:image/png;base64,') >= 1, f"{stem}: no embedded figure"
        assert not EXTERNAL.search(html), f"{stem}: external resource {EXTERNAL.search(html).group(0)}"
        assert "SMOKE PROFILE" in html and "Traceback" not in html, stem
        assert (out / f"{stem}.ipynb").exists()
    explorer = (out / "09_explore_heads.html").read_text(encoding="utf-8")
    assert f'id="{explore.STATIC_MARKER}"' in explorer  # the explorer page is never blank without a kernel
    regions = json.loads((out / "10_attributions.json").read_text())["regions"]
    assert {r["model"] for r in regions if r.get("family") == "attention"} == {"DAF-MHSCA", "DAN", "DDAMFN"}
    assert all(0 <= r["mass in regions"] <= 1 for r in regions if r.get("family"))
    notes = (out / "reproduction_notes.html").read_text(encoding="utf-8")
    assert "What this build's runs say" in notes and not EXTERNAL.search(notes)

    index = (out / "index.html").read_text(encoding="utf-8")
    assert not EXTERNAL.search(index)
    body = index.split('<table class="summary">')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)[1:]
    datasets = [re.search(r"<td>(.*?)</td>", r).group(1) for r in rows]
    assert datasets == [*paper.DATASETS.values(), "built-in synthetic faces"]
    for stem, _ in report.NOTEBOOKS:
        assert f'href="{stem}.html"' in index
    assert index.count('class="ok"') == len(report.NOTEBOOKS)
    assert (out / "summary.md").read_text().count("\n") == 2 + 6
    build = json.loads((out / "build.json").read_text())
    assert build["pages"] == {stem: "ok" for stem, _ in report.NOTEBOOKS} and build["command"].startswith("run_all.sh --profile smoke")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- summary:smoke:start -->\nold\n<!-- summary:smoke:end -->\ntail\n")
    script("readme_summary").update_readme(readme, "smoke", out)  # the README's table is the report's own summary.md
    text = readme.read_text()
    assert (out / "summary.md").read_text() in text and build["machine"] in text and "old" not in text and text.endswith("tail\n")
    print(f"smoke report end to end: {seconds:.0f} s")


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


def _notebook(path: Path, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"\ndatasets = None\nseeds = None\ndevice = ""\noutput_dir = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def test_failing_notebook_stops_the_build_and_keeps_earlier_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "notebooks"
    src.mkdir()
    _notebook(src / "a_ok.ipynb", "print('fine', profile)")
    _notebook(src / "b_bad.ipynb", "raise ValueError('broken on purpose')")
    _notebook(src / "c_never.ipynb", "print('never')")
    monkeypatch.setattr(report, "NOTEBOOK_DIR", src)
    monkeypatch.setattr(report, "NOTEBOOKS", (("a_ok", "A"), ("b_bad", "B"), ("c_never", "C")))
    out = tmp_path / "out"
    lines: list[str] = []
    with pytest.raises(report.NotebookFailed) as err:
        report.build("smoke", out_dir=out, pretrain=False, say=lines.append)
    assert err.value.stem == "b_bad" and "ValueError: broken on purpose" in err.value.error
    assert (out / "a_ok.html").exists() and not (out / "c_never.html").exists()
    assert "broken on purpose" in (out / "b_bad.html").read_text()  # the page shows the error
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

    for stem, _ in report.NOTEBOOKS:
        names = set(inspect_notebook(str(PROJECT_ROOT / "notebooks" / f"{stem}.ipynb")))
        assert {"profile", "datasets", "seeds", "device", "output_dir"} <= names, stem
