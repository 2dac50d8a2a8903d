"""The report as a site (seconds, no training): shared stylesheets, navigation, page checks, the rebuild box."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from fer_lib.engine import RunConfig
from fer_lib.report import build, html, page, plan, site

STEMS = [stem for stem, _ in plan.NOTEBOOKS]


def _executed(path: Path, outputs: list) -> Path:
    """An executed notebook: a markdown cell, then one code cell holding ``outputs``."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = outputs
    nb.cells = [nbformat.v4.new_markdown_cell("# A page\n\nSome prose."), cell]
    nbformat.write(nb, str(path))
    return path


def _display(text: str = "**shown**") -> dict:
    return nbformat.v4.new_output("display_data", data={"text/markdown": text, "text/plain": text})


def _nav_links(text: str) -> tuple[str | None, str | None]:
    """(prev, next) hrefs of a page's navigation bar."""
    nav = text.split('<nav class="site-nav">')[1].split("</nav>")[0]
    prev = nav.split('rel="prev"')[0].rsplit('href="', 1)[1].split('"')[0] if 'rel="prev"' in nav else None
    nxt = nav.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0] if 'rel="next"' in nav else None
    return prev, nxt


def test_notebook_page_links_the_shared_css_and_stays_small(tmp_path: Path) -> None:
    stem = STEMS[2]
    text = html.render_notebook(_executed(tmp_path / f"{stem}.ipynb", [_display()]), tmp_path / f"{stem}.html").read_text()
    assert '<link href="notebook.css" rel="stylesheet"/>' in text and '<link href="report.css" rel="stylesheet"/>' in text
    assert "<style" not in text and "--jp-" not in text  # nbconvert's CSS is not inlined
    assert len(text.encode()) < 20_000 and "<strong>shown</strong>" in text
    css = (tmp_path / site.NOTEBOOK_STYLESHEET).read_text()
    assert len(css) > 100_000 and ".jp-OutputArea" in css and ".highlight" in css  # written once, beside the pages
    assert "nav.site-nav" in (tmp_path / site.STYLESHEET).read_text() and "75ch" in site.SITE_CSS


@pytest.mark.parametrize("k", [0, 2, len(STEMS) - 1])
def test_notebook_page_nav_has_the_right_neighbours(tmp_path: Path, k: int) -> None:
    stem = STEMS[k]
    text = html.render_notebook(_executed(tmp_path / f"{stem}.ipynb", [_display()]), tmp_path / f"{stem}.html").read_text()
    want_prev = f"{STEMS[k - 1]}.html" if k else "index.html"
    want_next = f"{STEMS[k + 1]}.html" if k + 1 < len(STEMS) else f"{site.NOTES_PAGE}.html"
    assert _nav_links(text) == (want_prev, want_next)
    assert 'href="index.html">Contents' in text and f'href="{site.NOTES_PAGE}.html">Reproduction notes' in text


def test_index_and_notes_link_the_stylesheet_and_carry_the_nav(tmp_path: Path) -> None:
    statuses = [plan.DatasetStatus("rafdb", False, "RAF-DB not found under /data"), plan.DatasetStatus("fer2013", True)]
    index = html.render_index(tmp_path, "smoke", {}, {"machine": "m"}, statuses=statuses).read_text()
    notes = html.render_notes(tmp_path, "smoke").read_text()
    for text in (index, notes):
        assert '<link rel="stylesheet" href="report.css">' in text and "<style" not in text
    assert _nav_links(index) == (None, f"{STEMS[0]}.html")
    assert _nav_links(notes) == (f"{STEMS[-1]}.html", None)
    table = index.split('<table class="status">')[1].split("</table>")[0]
    assert "<th>dataset</th><th>run here</th><th>why / note</th>" in table
    assert "<td>no</td><td>not run: RAF-DB not found under /data</td>" in table and table.count("<tr>") == 3
    assert f'id="{html.DATASETS_ANCHOR}"' in index


def test_header_names_the_datasets_run_without_the_status_table(tmp_path: Path) -> None:
    statuses = [plan.DatasetStatus("rafdb", False, "RAF-DB not found"), plan.DatasetStatus("fer2013", True)]
    text = page.Page(plan.ReportPlan("cpu", ["fer2013"], [0, 1], statuses, None, "", {}), tmp_path).header()
    assert "| dataset |" not in text and "RAF-DB not found" not in text
    assert "Datasets run: FER2013. Why the others were not: see the [index](index.html#datasets)." in text
    assert "CPU PROFILE" in text and "Seeds: 0, 1." in text
    assert text.startswith('<div class="banner"><p><strong>CPU PROFILE</strong>')  # boxed as on the index


def test_stray_outputs_fail_the_check_and_display_data_passes(tmp_path: Path) -> None:
    site.check_outputs(_executed(tmp_path / "ok.ipynb", [_display()]))
    stream = nbformat.v4.new_output("stream", name="stdout", text="a log line\n")
    with pytest.raises(site.PageCheckFailed, match=r"^s leaves output .*cell 1 \(stdout"):
        site.check_outputs(_executed(tmp_path / "s.ipynb", [_display(), stream]))
    value = nbformat.v4.new_output("execute_result", data={"text/plain": "5648"}, execution_count=1)
    with pytest.raises(site.PageCheckFailed, match=r"^v leaves output .*cell 1 \(execute_result"):
        site.check_outputs(_executed(tmp_path / "v.ipynb", [value]))


def test_source_cell_index_skips_the_injected_parameters(tmp_path: Path) -> None:
    path = _executed(tmp_path / "p.ipynb", [nbformat.v4.new_output("stream", name="stderr", text="UserWarning\n")])
    nb = nbformat.read(str(path), as_version=4)
    injected = nbformat.v4.new_code_cell("profile = 'smoke'")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(0, injected)
    assert site.stray_outputs(nb) == [(2, 1, "stderr")]


def test_page_size_check_fails_over_the_limit(tmp_path: Path) -> None:
    small, big = tmp_path / "small.html", tmp_path / "10_big.html"
    small.write_bytes(b"x" * site.MAX_PAGE_BYTES)
    big.write_bytes(b"x" * (site.MAX_PAGE_BYTES + 1))
    assert site.check_page_size(small) == site.MAX_PAGE_BYTES
    with pytest.raises(site.PageCheckFailed, match=r"page 10_big.html is 1.5 MB, over the 1.5 MB limit"):
        site.check_page_size(big)


def _record(root: Path, cfg: RunConfig, seconds: list[float]) -> None:
    """A finished run record with one history line per epoch."""
    run = root / "runs" / cfg.id
    run.mkdir(parents=True)
    data = {"name": cfg.dataset, "fingerprint": "abc123", "classes": ["a", "b"]}
    (run / "config.json").write_text(json.dumps({"id": cfg.id, "config": cfg.to_dict(), "plan": {}, "data": data}))
    (run / "metrics.json").write_text("{}")
    (run / "history.jsonl").write_text("".join(json.dumps({"epoch": k, "seconds": s, "eval_seconds": 1.0}) + "\n"
                                               for k, s in enumerate(seconds, 1)))
    (run / "env.json").write_text(json.dumps({"python": "3.11.7", "torch": "2.9", "device": "cpu", "cpu": "Test CPU", "cpu_count": 2,
                                                "torch_threads": 1, "precision": "bf16"}))


def test_rebuild_box_lists_the_runs_checksums_environment_and_compute(tmp_path: Path) -> None:
    done, missing = RunConfig(dataset="synthetic", profile="smoke", seed=0), RunConfig(dataset="synthetic", profile="smoke", seed=1)
    _record(tmp_path, done, [10.0, 20.0])
    facts = site.runs_facts([done.id, missing.id], root=tmp_path)
    assert facts.seconds == 32.0 and facts.epochs == 2 and facts.missing == [missing.id]
    command = site.rebuild_command("smoke", ["synthetic"], [0])
    box = site.rebuild_box(command, facts, "this machine")
    assert "./run_all.sh --profile smoke --datasets synthetic --seeds 0" in box
    assert f"<code>{done.id}</code></li>" in box and f"<code>{missing.id}</code> (no finished record)" in box
    assert "synthetic: <code>abc123</code>" in box and "python 3.11.7, torch 2.9, precision bf16, CPU Test CPU, 2 cores, 1 torch thread" in box
    assert "32 s of training and evaluation over 2 epochs of 1 run " in box
    assert "Runs: unknown" in site.rebuild_box(command, None, "m")


def test_page_runs_come_from_the_published_list_or_the_plan_groups(tmp_path: Path) -> None:
    report_plan = plan.make_plan("smoke")
    (tmp_path / f"{STEMS[0]}.json").write_text(json.dumps({"runs": ["a", "b", "a"]}))
    assert site.page_run_ids(STEMS[0], report_plan, tmp_path) == ["a", "b"]
    figures = [c.id for cfgs in report_plan.groups["figures"].values() for c in cfgs]
    assert site.page_run_ids("04_fig5_confusion", report_plan, tmp_path) == figures and len(figures) == 3
    assert site.page_run_ids("11_walkthrough", report_plan, tmp_path) == [report_plan.groups["figures"]["DAF-MHSCA"][0].id]
    assert site.page_run_ids("08_fig9_efficiency", report_plan, tmp_path) == []
    assert site.page_run_ids("99_unknown", report_plan, tmp_path) is None
    assert set(site.PAGE_GROUPS) == set(STEMS)  # every notebook says which runs it reads


def test_a_notebook_that_prints_fails_the_build_naming_its_cell(tmp_path: Path, write_notebook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_RESULTS", str(tmp_path / "results"))
    src = tmp_path / "notebooks"
    src.mkdir()
    write_notebook(src / "a_ok.ipynb", "from IPython.display import Markdown, display\ndisplay(Markdown('fine'))\nx = 1")
    write_notebook(src / "b_log.ipynb", "print('a log line')")
    out = tmp_path / "out"
    with pytest.raises(build.NotebookFailed) as err:
        build.build("smoke", out_dir=out, pretrain=False, say=lambda _: None, notebook_dir=src,
                    notebook_list=(("a_ok", "A"), ("b_log", "B")))
    assert err.value.stem == "b_log" and "cell 2 (stdout" in err.value.error
    assert (out / "a_ok.html").exists() and "Rebuild this" in (out / "a_ok.html").read_text()
    assert "failed: b_log leaves output" in (out / "index.html").read_text()


def test_pages_run_two_at_a_time_and_stop_starting_after_a_failure(monkeypatch) -> None:
    import threading
    import time

    from fer_lib.report import parallel

    lock, active, peak, started, threads = threading.Lock(), [0], [0], [], set()

    def run_one(stem: str, pause: float = 0.05) -> None:
        with lock:
            started.append(stem)
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            threads.add(os.environ["OMP_NUM_THREADS"])
        time.sleep({"a": 0.2, "c": 0.05}.get(stem, pause))
        with lock:
            active[0] -= 1
        if stem in ("a", "c"):
            raise ValueError(f"{stem} broke")

    monkeypatch.setattr(parallel, "cores", lambda: 8)
    monkeypatch.setenv("OMP_NUM_THREADS", "16")
    parallel.run_all(["b", "d"], run_one, jobs=2)
    assert peak[0] == 2 and threads == {"4"}  # two at a time, half the cores each
    assert os.environ["OMP_NUM_THREADS"] == "16"  # the kernels' setting is undone after
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a build asked to stay light keeps its 1 thread
    threads.clear()
    parallel.run_all(["b", "d"], run_one, jobs=2)
    assert threads == {"1"}
    started.clear()
    with pytest.raises(ValueError, match="a broke"):  # c failed first; a comes first in reading order
        parallel.run_all(["a", "c", "d", "e"], run_one, jobs=2)
    assert started == ["a", "c"]  # in order, and nothing new after c's failure
    started.clear()
    parallel.run_all(["b", "d", "f"], lambda s: started.append(s), jobs=1)
    assert started == ["b", "d", "f"]
