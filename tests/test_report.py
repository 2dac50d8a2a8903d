"""The report's pieces without training: published numbers, dataset rows, run plans, tables, HTML, figures."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import nbformat
import numpy as np
import pytest

matplotlib.use("Agg")

from fer_lib import paper, plots, report  # noqa: E402
from fer_lib.engine import RunConfig  # noqa: E402

EXTERNAL = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//|<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//|@import\s+url\(\s*[\"']?https?:", re.I)


# ---------------------------------------------------------------- published numbers


def test_published_numbers_agree_across_tables() -> None:
    ours = paper.TABLE3[paper.OURS]
    assert [ours[d] for d in paper.DATASETS] == [92.49, 67.72, 65.20, 74.33, 91.38]
    assert paper.TABLE4[paper.OURS] == {d: ours[d] for d in paper.DATASETS}  # the typo'd row read as Table 3
    assert paper.TABLE5[4] == {d: ours[d] for d in paper.TABLE5_DATASETS}
    assert paper.FIG8_PEAK == {"theta": 0.3, "accuracy": ours["rafdb"]}
    assert paper.FIG8_THETAS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert len(paper.TABLE3) == 10 and set(paper.ABLATION_OPTIONS) == set(paper.TABLE4)
    # The prose of Sec. 3.6 quotes these cells.
    assert paper.TABLE4["w/o AFC"]["rafdb"] == 91.69 and paper.TABLE4["w/o DAF"]["rafdb"] == 90.96
    assert paper.TABLE4["w/o CA"]["affectnet7"] == 67.37 and paper.TABLE4["w/o MHSCA"]["ferplus"] == 91.15
    assert paper.published("DDAMFN", "fer2013") is None


# ---------------------------------------------------------------- datasets and plans


def test_smoke_rows_one_per_paper_dataset_plus_synthetic() -> None:
    rows = report.dataset_statuses("smoke")
    assert [r.name for r in rows] == [*paper.DATASETS, report.SYNTHETIC]
    assert [r.run for r in rows] == [False] * 5 + [True]
    assert all("synthetic data only" in r.why for r in rows[:5])


def test_absent_data_says_where_it_was_looked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_DATA", str(tmp_path))
    rows = {r.name: r for r in report.dataset_statuses("cpu", ["rafdb", "fer2013"])}
    assert not rows["rafdb"].run and rows["rafdb"].why.startswith(f"RAF-DB not found under $FER_DATA={tmp_path}")
    assert not rows["fer2013"].run and "FER2013 not found" in rows["fer2013"].why
    assert rows["ferplus"].why.startswith("not requested")
    (tmp_path / "fer2013").mkdir()
    (tmp_path / "fer2013" / "fer2013.csv").write_text("emotion,pixels,Usage\n")
    assert report.missing_data("fer2013") is None


def test_smoke_plan_is_small_and_covers_every_notebook() -> None:
    cfgs = report.planned_configs("smoke")
    assert len({c.id for c in cfgs}) == len(cfgs) <= 10
    options = [(c.model, c.model_options, c.loss_options) for c in cfgs]
    for opts in paper.ABLATION_OPTIONS.values():
        assert ("daf_mhsca", opts, {}) in options
    assert ("dan", {}, {}) in options and ("ddamfn", {}, {}) in options
    assert ("daf_mhsca", {"num_heads": 1}, {}) in options and ("daf_mhsca", {}, {"theta": 1.0}) in options
    assert all(c.dataset == report.SYNTHETIC and c.profile == "smoke" for c in cfgs)


def test_cpu_plan_uses_both_recipes_on_rafdb_and_shorter_sweeps() -> None:
    t3 = report.table3_configs("cpu", ["rafdb", "ferplus"], [0])
    assert {k[2] for k in t3 if k[1] == "rafdb" and k[0] == paper.OURS} == {"paper", "ours"}
    assert ("DAN", "rafdb", "ours") in t3  # figure dataset: RAF-DB first, with the working lr
    sweeps = report.table5_configs("cpu", ["fer2013", "ferplus"], [0], (1, 4))
    assert {ds for _, ds in sweeps} == {"ferplus"}  # Table 5 has no FER2013 column
    assert all(c.overrides == report.SCOPES["cpu"].sweep_overrides for cs in sweeps.values() for c in cs)
    thetas = report.theta_configs("cpu", "ferplus", [0], paper.FIG8_THETAS)
    assert thetas[0.3][0].loss_options == {} and thetas[0.1][0].loss_options == {"theta": 0.1}


# ---------------------------------------------------------------- cells and tables


def fake_record(dataset: str, acc: float, synthetic: bool = False, seed: int = 0, model: str = "daf_mhsca") -> SimpleNamespace:
    cfg = RunConfig(dataset=dataset, model=model, profile="smoke" if synthetic else "cpu", seed=seed)
    block = {"epoch": 2, "val": {"accuracy": acc}, "test": {"accuracy": acc, "confusion": [[3, 1], [0, 4]], "per_class_recall": [0.75, 1.0]}}
    return SimpleNamespace(
        id=cfg.id, config=cfg, plan={"epochs": 2, "image_size": 48, "notes": ["image size 48 px (paper: 224)"]},
        data={"synthetic": synthetic, "n_train": 100, "n_train_used": 100, "n_val": 10, "n_test": 10, "classes": ["a", "b"]},
        metrics={"last": block, "best_val": block, "best_test": block}, history=[{"epoch": 1, "loss_gate_mhv": 0.5}, {"epoch": 2, "loss_gate_mhv": 1.0}],
        env={"device": "cpu", "cpu": "Test CPU", "torch_threads": 2}, classes=["a", "b"])


def test_cells_mean_std_and_difference() -> None:
    outs = [report.Outcome(None, fake_record("fer2013", a, seed=s)) for s, a in enumerate((0.70, 0.74))]
    c = report.cell(outs)
    assert c.mean == pytest.approx(72.0) and c.std == pytest.approx(2 ** 0.5 * 2)
    assert c.text() == "72.00 ± 2.83 (n=2)"
    assert report.difference(c, 74.33) == "-2.33"
    synth = report.cell([report.Outcome(None, fake_record("synthetic", 0.5, synthetic=True))])
    assert report.difference(synth, 74.33) == "not comparable (synthetic data)" and synth.text().endswith("[synthetic]")
    missing = report.cell([report.Outcome(None, None, "ConfigError: unknown model 'x'")])
    assert missing.text() == "not run: ConfigError: unknown model 'x'" and report.difference(missing, 1.0) == "—"
    assert report.mean_gates([outs[0].record]) == {"mhv": 0.75}


def test_table3_index_has_one_row_per_dataset(tmp_path: Path) -> None:
    # Statuses given, not probed: the table must not depend on which datasets this machine holds.
    statuses = [report.DatasetStatus(d, d in ("fer2013", "ferplus"), "" if d in ("fer2013", "ferplus") else "RAF-DB not found")
                for d in report.PAPER_DATASETS]
    ctx = report.Context("cpu", ["fer2013", "ferplus"], [0], "", tmp_path, statuses, report.SCOPES["cpu"])
    outcomes = {(paper.OURS, "fer2013", "paper"): [report.Outcome(None, fake_record("fer2013", 0.70))],
                (paper.OURS, "ferplus", "paper"): [report.Outcome(None, None, "DatasetError: broken file")]}
    wide, comparison, summary = report.table3_frames(ctx, outcomes)
    assert len(summary["rows"]) == len(ctx.statuses) == 5
    by = {r["Dataset"]: r for r in summary["rows"]}
    assert by["FER2013"]["Reproduced"] == "70.00" and by["FER2013"]["Δ (points)"] == "-4.33"
    assert by["FER2013"]["Published (Table 3)"] == "74.33"
    assert by["FERPlus"]["Reproduced"] == "not run: DatasetError: broken file"
    assert by["RAF-DB"]["Reproduced"].startswith("not run: ")
    assert "DAF-MHSCA, reproduced here" in wide.index and "MFER (2024, published)" in wide.index
    md = report.summary_markdown(summary)
    assert md.count("\n") == 2 + 5 and "| FER2013 | 74.33 | 70.00 | -4.33 |" in md


def test_sweep_frame_marks_datasets_not_run(tmp_path: Path) -> None:
    ctx = report.context("cpu", ["fer2013"], [0], output_dir=tmp_path)
    outs = {("w/o AFC", "fer2013"): [report.Outcome(None, fake_record("fer2013", 0.7))]}
    df = report.sweep_frame(ctx, outs, paper.TABLE4, "variant", datasets=list(paper.DATASETS))
    assert df.loc["w/o AFC", ("FER2013", "ours")] == "70.00"
    assert df.loc["w/o AFC", ("FER2013", "Δ")] == "-2.85"
    assert df.loc["w/o AFC", ("RAF-DB", "ours")] == "not run" and df.loc["w/o AFC", ("RAF-DB", "paper")] == "91.69"
    report.write_summary(tmp_path, "t", {"table": df})
    assert json.loads((tmp_path / "t.json").read_text())["table"]["columns"][0] == "RAF-DB / paper"


# ---------------------------------------------------------------- figures


def test_every_figure_carries_its_stamp() -> None:
    recs = [fake_record("fer2013", 0.7, seed=s) for s in (0, 1)]
    footer = plots.describe_runs(recs)
    for part in ("profile cpu", "data: FER2013", "seeds 0, 1", "2 epochs", "48 px", "hardware: Test CPU, 2 threads"):
        assert part in footer
    assert "SYNTHETIC" in plots.describe_runs([fake_record("synthetic", 0.5, synthetic=True)])
    rng = np.random.default_rng(0)
    figs = [
        plots.confusion_grid([("m", [[3, 1], [0, 4]], ["a", "b"])], footer),
        plots.tsne_grid([("m", rng.normal(size=(20, 2)), rng.integers(0, 2, 20))], ["a", "b"], footer),
        plots.attention_grid(rng.integers(0, 255, (2, 1, 16, 16)), [0, 1], [("m", rng.random((2, 2, 2)), [0, 0]), ("r", None, [1, 1])], ["a", "b"], footer),
        plots.sweep_plot({"FERPlus": ([1, 4], [50.0, 60.0], [0.0, 1.0])}, {"FERPlus": {1: 89.91, 4: 91.38}}, "N_h", "t", footer, logx=True),
        plots.efficiency_scatter([("x", [{"name": "a", "x": 10, "y": 20}, {"name": "p", "x": 16.5, "y": 43, "source": "paper"}])], footer),
        plots.compare_bars({"FER2013": {"ours": (70.0, 1.0, 74.33)}}, footer),
    ]
    for fig in figs:
        assert any("profile cpu" in t.get_text() for t in fig.texts)
        fig.canvas.draw()
        plots.plt.close(fig)
    assert plots.tsne_embed(rng.normal(size=(12, 5))).shape == (12, 2)


# ---------------------------------------------------------------- HTML


def _png() -> str:
    fig, ax = plots.plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plots.plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def test_rendered_page_embeds_images_and_loads_no_external_script(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("fig")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"})]
    nb.cells = [nbformat.v4.new_markdown_cell("# Page with $x^2$ math"), cell]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nbformat.write(nb, str(tmp_path / "p.ipynb"))
    html = report.render_notebook(tmp_path / "p.ipynb", tmp_path / "p.html").read_text()
    assert 'src="data:image/png;base64,' in html
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert "<script" not in html.lower() and "cdn" not in html.lower()  # no require.js, MathJax, Mermaid or widgets
    assert 'href="index.html"' in html


def test_index_and_notes_pages(tmp_path: Path) -> None:
    ctx = report.context("smoke", None, None, output_dir=tmp_path)
    outcomes = {(paper.OURS, "synthetic", "paper"): [report.Outcome(None, fake_record("synthetic", 0.5, synthetic=True))]}
    _, _, summary = report.table3_frames(ctx, outcomes)
    report.write_summary(tmp_path, "01_table3_accuracy", {"index": summary, "rafdb_recipes": {}})
    report.write_summary(tmp_path, "02_table4_ablations", {"ablations": {"synthetic": {paper.OURS: 50.0, "w/o AFC": 40.0, "w/o DAF": 60.0}}})
    report.write_summary(tmp_path, "07_fig8_theta", {"dataset": "synthetic", "theta": [0.3, 1.0], "mean": [50.0, 55.0], "std": [0, 0]})
    notes = report.render_notes(tmp_path, "smoke").read_text()
    assert "lowered accuracy for 1 of 2 ablations (w/o AFC)" in notes and "best 1 among 0.3, 1" in notes
    index = report.render_index(tmp_path, "smoke", {"01_table3_accuracy": "ok", "02_table4_ablations": "failed: ValueError: x"}, {"machine": "m"})
    text = index.read_text()
    body = text.split('<table class="summary">')[1].split("</table>")[0]
    assert body.count("<tr>") == 1 + 6  # header + five paper datasets + synthetic
    assert "SYNTHETIC" in text and "failed: ValueError: x" in text and "not reached" in text
    assert not EXTERNAL.search(text) and not EXTERNAL.search(notes)


def test_existing_report_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    assert report.prepare_output(out, force=False) is None
    (out / "index.html").write_text("old")
    with pytest.raises(FileExistsError, match="--force"):
        report.prepare_output(out, force=False)
    aside = report.prepare_output(out, force=True)
    assert (aside / "index.html").read_text() == "old" and out.is_dir() and not any(out.iterdir())


# ---------------------------------------------------------------- notebooks


@pytest.mark.parametrize("stem", [s for s, _ in report.NOTEBOOKS])
def test_notebook_has_parameters_and_no_outputs(stem: str) -> None:
    nb = nbformat.read(str(report.NOTEBOOK_DIR / f"{stem}.ipynb"), as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for name in ("profile", "datasets", "seeds", "device", "output_dir"):
        assert re.search(rf"^{name} = ", params[0].source, re.M), name
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


def test_no_train_mode_reports_missing_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_RESULTS", str(tmp_path))
    monkeypatch.setenv(report.NO_TRAIN_ENV, "1")
    cfgs = [report.config("synthetic", "smoke", 0), report.config("synthetic", "smoke", 0, model="no_such_model")]
    missing, unknown = report.fetch(cfgs)
    assert missing.record is None and missing.why.startswith("not trained yet")
    assert unknown.record is None and "unknown model 'no_such_model'" in unknown.why
    assert not (tmp_path / "runs" / cfgs[0].id / "metrics.json").exists()


def test_baselines_run_at_their_native_size_only_under_the_paper_profile() -> None:
    for profile, sizes in (("cpu", {64}), ("paper", {224, 112})):
        got = {m: report.baseline_config(m, "ferplus", profile, 0).plan.image_size for m in paper.FIGURE_METHODS}
        assert set(got.values()) == sizes, (profile, got)
    assert report.baseline_config("DDAMFN", "ferplus", "paper", 0).plan.image_size == paper.NATIVE_IMAGE_SIZE["DDAMFN"] == 112


def test_findings_state_the_region_numbers_or_why_not(tmp_path: Path) -> None:
    rows = [{"model": m, "map": "A_s", "family": "attention", "mass in regions": mass, "region area": 0.06,
             "lift (mass / area)": mass / 0.06} for m, mass in (("DAF-MHSCA", 0.12), ("DAN", 0.06))]
    rows.append({"model": "DAN", "map": "grad-cam", "family": "attribution", "mass in regions": 0.03, "region area": 0.06,
                 "lift (mass / area)": 0.5})
    (tmp_path / "10_attributions.json").write_text(json.dumps({"dataset": "synthetic", "synthetic": True, "regions": rows}))
    text = report.findings(tmp_path, "smoke")
    line = next(x for x in text.splitlines() if "key facial" in x)
    assert "cover 6.0%" in line and "DAF-MHSCA A_s 12.0% (lift 2.00)" in line and "DAN grad-cam 3.0% (lift 0.50)" in line
    (tmp_path / "10_attributions.json").write_text(json.dumps({"dataset": "ferplus", "synthetic": False, "regions": []}))
    assert "ferplus has no region masks" in report.findings(tmp_path, "cpu")
