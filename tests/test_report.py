"""The report's pieces without training: published numbers, dataset rows, the plan, tables, HTML, figures."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import subprocess
import sys
import textwrap
from html import escape
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import nbformat
import numpy as np
import pytest

matplotlib.use("Agg")

import fer_lib.data  # noqa: E402
from fer_lib import PROJECT_ROOT, accuracy_plots, claims, paper, plots  # noqa: E402
from fer_lib.engine import PROFILES, RunConfig, evidence  # noqa: E402
from fer_lib.report import build, html, plan, published, results, tables  # noqa: E402
from fer_lib.report.page import open_page  # noqa: E402

EXTERNAL = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//|<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//|@import\s+url\(\s*[\"']?https?:", re.I)


# ---------------------------------------------------------------- published numbers


def test_published_numbers_agree_across_tables() -> None:
    ours = paper.TABLE3[paper.OURS]
    assert [ours[d] for d in paper.DATASETS] == [92.49, 67.72, 65.20, 74.33, 91.38]
    assert paper.TABLE4[paper.OURS] == {d: ours[d] for d in paper.DATASETS}  # the typo'd row read as Table 3
    assert paper.TABLE5[4] == {d: ours[d] for d in paper.TABLE5_DATASETS}
    assert paper.FIG8_PEAK == {"theta": 0.3, "accuracy": ours["rafdb"]}
    assert paper.FIG8_THETAS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert len(paper.TABLE3) == 10 and set(paper.ABLATION_OPTIONS) == set(paper.TABLE4) | {paper.CONTROL}  # our control row
    # The prose of Sec. 3.6 quotes these cells.
    assert paper.TABLE4["w/o AFC"]["rafdb"] == 91.69 and paper.TABLE4["w/o DAF"]["rafdb"] == 90.96
    assert paper.TABLE4["w/o CA"]["affectnet7"] == 67.37 and paper.TABLE4["w/o MHSCA"]["ferplus"] == 91.15
    assert paper.published("DDAMFN", "fer2013") is None


# ---------------------------------------------------------------- datasets and plans


def test_smoke_rows_one_per_paper_dataset_plus_synthetic() -> None:
    rows = plan.dataset_statuses("smoke")
    assert [r.name for r in rows] == [*paper.DATASETS, plan.SYNTHETIC]
    assert [r.run for r in rows] == [False] * 5 + [True]
    assert all("synthetic data only" in r.why for r in rows[:5])


def test_absent_data_says_where_it_was_looked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_DATA", str(tmp_path))
    rows = {r.name: r for r in plan.dataset_statuses("cpu", ["rafdb", "fer2013"])}
    assert not rows["rafdb"].run and rows["rafdb"].why.startswith(f"RAF-DB not found under $FER_DATA={tmp_path}")
    assert not rows["fer2013"].run and "FER2013 not found" in rows["fer2013"].why
    assert rows["ferplus"].why.startswith("not requested")
    (tmp_path / "fer2013").mkdir()
    (tmp_path / "fer2013" / "fer2013.csv").write_text("emotion,pixels,Usage\n")
    assert plan.missing_data("fer2013") is None


def test_smoke_plan_is_small_and_covers_every_notebook() -> None:
    cfgs = plan.planned_configs("smoke")
    assert len({c.id for c in cfgs}) == len(cfgs) <= 10
    options = [(c.model, c.model_options, c.loss_options) for c in cfgs]
    for opts in paper.ABLATION_OPTIONS.values():
        assert ("daf_mhsca", opts, {}) in options
    assert ("dan", {}, {}) in options and ("ddamfn", {}, {}) in options
    assert ("daf_mhsca", {"num_heads": 1}, {}) in options and ("daf_mhsca", {}, {"theta": 1.0}) in options
    assert all(c.dataset == plan.SYNTHETIC and c.profile == "smoke" for c in cfgs)


def test_demo_plan_trains_table3_at_its_budget_and_says_the_rest_is_smaller() -> None:
    cfgs = plan.planned_configs("demo")
    full = [c for c in cfgs if not c.overrides]
    assert {(c.model, tuple(c.model_options.items())) for c in full} == {
        ("daf_mhsca", (("head_gate", "channel_sum"),)),  # Table 3: DAF-MHSCA as the cpu study reads it, and its control
        ("daf_mhsca", tuple(paper.CONTROL_OPTIONS.items()))}
    assert all(c.overrides == plan.DEMO_SMALL for c in cfgs if c not in full) and len(cfgs) > len(full) + 8
    head = full[0].plan
    assert head.dataset == plan.SYNTHETIC and head.data_options["per_class"] == [2000, 150, 150]
    assert head.augment and not any(head.augment.values())  # no random augmentation
    assert head.lr == 5e-4 and head.epochs == 3  # the scratch recipe's peak, the epochs measured in docs/report.md
    assert "head_gate=channel_sum" in plan.scope_note("demo")
    assert f"at a smaller budget (2 epochs, {plan.DEMO_SMALL['train_subset']} training faces)" in plan.scope_note("demo")
    assert plan.dataset_statuses("demo")[-1].run and not any(s.run for s in plan.dataset_statuses("demo")[:-1])


def test_cpu_plan_reads_the_head_map_per_head_and_trains_the_printed_reading_as_a_row() -> None:
    cfgs = plan.planned_configs("cpu", ["fer2013", "ferplus"])
    with_heads = [c for c in cfgs if c.model == "daf_mhsca" and c.model_options.get("use_mhsca", True)]
    printed = [c for c in with_heads if c.model_options.get("head_gate") == "elementwise"]
    assert len(printed) == 1 and printed[0].dataset == "ferplus"  # the printed Eq. 9, one row of the readings table
    assert all(c.model_options.get("head_gate") == "channel_sum" for c in with_heads if c not in printed)
    control = [c for c in cfgs if c.model_options == paper.CONTROL_OPTIONS]
    assert len(control) == 6  # the bare trunk has no heads: its ids do not move with the reading
    cli = RunConfig(dataset="fer2013", model="daf_mhsca", model_options={"head_gate": "channel_sum"}, profile="cpu")
    assert plan.table3_configs("cpu", ["fer2013"], [0])[(paper.OURS, "fer2013", "scratch")][0].id == cli.id
    assert plan.without_reading("cpu", {"head_gate": "channel_sum", "use_afc": False}) == {"use_afc": False}
    assert "head_gate=channel_sum" in plan.scope_note("cpu") and "head_gate" not in plan.scope_note("paper")
    assert set(plan.readings_of("paper")) == set(plan.READINGS) - {"head map elementwise (Eq. 9 as printed)"}
    daf = [c for c in cfgs if c.model_options.get("daf_concat") == "channels"]  # Eq. 8 as printed: one row, the cpu reading kept
    assert [(c.dataset, c.seed, c.model_options["head_gate"]) for c in daf] == [("ferplus", 0, "channel_sum")]
    literal = [c for c in cfgs if c.model_options.get("daf_cross") == "literal"]  # Eq. 7 as printed: one row too
    assert [(c.dataset, c.seed, c.model_options["head_gate"]) for c in literal] == [("ferplus", 0, "channel_sum")]
    assert all(not c.model_options.get("head_gate") for c in plan.planned_configs("smoke"))  # smoke ids unchanged


def test_rafdb_runs_under_both_recipes_and_the_sweeps_are_shorter() -> None:
    t3 = plan.table3_configs("paper", ["rafdb", "ferplus"], [0])
    assert {k[2] for k in t3 if k[1] == "rafdb" and k[0] == paper.OURS} == {"paper", "ours"}
    assert ("DAN", "rafdb", "ours") in t3  # figure dataset: RAF-DB first, with the working lr
    cpu = plan.table3_configs("cpu", ["rafdb", "ferplus"], [0])
    assert {k[2] for k in cpu} == {"scratch"} and (paper.CONTROL, "ferplus", "scratch") in cpu  # the cpu profile's own recipe
    sweeps = plan.table5_configs("cpu", ["fer2013", "ferplus"], [0], (1, 4))
    assert {ds for _, ds in sweeps} == {"ferplus"}  # Table 5 has no FER2013 column
    assert all(c.overrides == plan.SCOPES["cpu"].sweep_overrides for cs in sweeps.values() for c in cs)
    thetas = plan.theta_configs("cpu", "ferplus", [0], paper.FIG8_THETAS)
    assert thetas[0.3][0].loss_options == {} and thetas[0.1][0].loss_options == {"theta": 0.1}
    assert plan.sweep_seeds("cpu", [0, 1, 2]) == [0] and plan.sweep_seeds("paper", [0, 1, 2]) == [0, 1, 2]


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
    outs = [results.Outcome(None, fake_record("fer2013", a, seed=s)) for s, a in enumerate((0.70, 0.74))]
    c = results.cell(outs)
    assert c.mean == pytest.approx(72.0) and c.std == pytest.approx(2 ** 0.5 * 2)
    assert c.text() == "72.00 ± 2.83 (2 seeds, no interval)"
    assert results.difference(c, 74.33) == "-2.33"
    synth = results.cell([results.Outcome(None, fake_record("synthetic", 0.5, synthetic=True))])
    assert results.difference(synth, 74.33) == "not comparable (synthetic data)" and synth.text().endswith("[synthetic]")
    missing = results.cell([results.Outcome(None, None, "ConfigError: unknown model 'x'")])
    assert missing.text() == "not run: ConfigError: unknown model 'x'" and results.difference(missing, 1.0) == "—"
    assert results.mean_gates([outs[0].record]) == {"mhv": 0.75}


def test_cell_says_when_its_seeds_trained_in_different_precisions() -> None:
    """precision=auto resolves per machine: a mean over seeds of bf16 and fp32 runs must say so."""
    recs = [fake_record("fer2013", a, seed=s) for s, a in enumerate((0.70, 0.74, 0.72))]
    for rec, precision in zip(recs, ("bf16", "fp32", "bf16")):
        rec.env = {**rec.env, "precision": precision}
    mixed = results.cell([results.Outcome(None, r) for r in recs])
    assert mixed.mixed_precision == "seeds in bf16: 0, 2; fp32: 1"
    assert mixed.text().endswith("— seeds in bf16: 0, 2; fp32: 1") and mixed.number().endswith("fp32: 1")
    recs[1].env["precision"] = "bf16"
    same = results.cell([results.Outcome(None, r) for r in recs])
    assert same.mixed_precision == "" and "seeds in" not in same.text()


def _plan(profile: str, statuses: list, datasets: list[str]) -> plan.ReportPlan:
    """A plan with given statuses, not probed: the tables must not depend on which datasets this machine holds."""
    return plan.ReportPlan(profile, datasets, [0], statuses, None, "", {})


def test_table3_index_has_one_row_per_dataset(tmp_path: Path) -> None:
    statuses = [plan.DatasetStatus(d, d in ("fer2013", "ferplus"), "" if d in ("fer2013", "ferplus") else "RAF-DB not found")
                for d in plan.PAPER_DATASETS]
    report_plan = _plan("cpu", statuses, ["fer2013", "ferplus"])
    outcomes = {(paper.OURS, "fer2013", "scratch"): [results.Outcome(None, fake_record("fer2013", 0.70))],
                (paper.OURS, "ferplus", "scratch"): [results.Outcome(None, None, "DatasetError: broken file")]}
    wide, comparison, index = tables.table3_frames(report_plan, outcomes)
    assert len(index.rows) == len(report_plan.statuses) == 5
    by = {r["Dataset"]: r for r in index.rows}
    assert by["FER2013"][tables.MEAN] == "70.00" and by["FER2013"][tables.GAP] == "-4.33"  # the cpu recipe's row
    assert by["FER2013"][tables.PUB] == "74.33"
    assert by["FERPlus"][tables.MEAN] == "not run: DatasetError: broken file"
    assert by["RAF-DB"][tables.MEAN].startswith("not run: ")
    assert "DAF-MHSCA, reproduced here" in wide.index and "MFER (2024, published)" in wide.index
    md = tables.summary_markdown(index)
    assert md.count("\n") == 2 + 5 and "| FER2013 | 74.33 | 70.00 | 1 seed, no interval | 1 | -4.33 |" in md


def test_sweep_frame_marks_datasets_not_run(tmp_path: Path) -> None:
    statuses = [plan.DatasetStatus(d, d == "fer2013", "" if d == "fer2013" else "not requested") for d in plan.PAPER_DATASETS]
    outs = {("w/o AFC", "fer2013"): [results.Outcome(None, fake_record("fer2013", 0.7))]}
    df = tables.sweep_frame(_plan("cpu", statuses, ["fer2013"]), outs, paper.TABLE4, "variant", datasets=list(paper.DATASETS))
    assert df.loc["w/o AFC", ("FER2013", tables.MEAN)] == "70.00"
    assert df.loc["w/o AFC", ("FER2013", tables.GAP)] == "-2.85"
    assert df.loc["w/o AFC", ("FER2013", tables.CI)] == "1 seed, no interval"
    assert ("RAF-DB", tables.MEAN) not in df.columns and df.loc["w/o AFC", ("RAF-DB", tables.PUB)] == "91.69"  # not run: no column of repeats
    assert published.frame(df)["columns"][0] == "RAF-DB / published %"


# ---------------------------------------------------------------- figures


def test_every_figure_carries_its_stamp() -> None:
    recs = [fake_record("fer2013", 0.7, seed=s) for s in (0, 1)]
    footer = plots.describe_runs(recs)
    for part in ("profile cpu", "data: FER2013", "seeds 0, 1", "2 epochs", "48 px", "hardware: CPU Test CPU, 2 torch threads"):
        assert part in footer
    assert "precision" not in footer  # not recorded: not guessed
    recs[1].env = {**recs[1].env, "precision": "fp32"}
    assert "precision ?, fp32" in plots.describe_runs(recs)  # seeds of one table trained on different machines say so
    assert "SYNTHETIC" in plots.describe_runs([fake_record("synthetic", 0.5, synthetic=True)])
    rng = np.random.default_rng(0)
    figs = [
        plots.confusion_grid([("m", [[3, 1], [0, 4]], ["a", "b"])], footer),
        plots.tsne_grid([("m", rng.normal(size=(20, 2)), rng.integers(0, 2, 20))], ["a", "b"], footer),
        plots.attention_grid(rng.integers(0, 255, (2, 1, 16, 16)), [0, 1], [("m", rng.random((2, 2, 2)), [0, 0]), ("r", None, [1, 1])], ["a", "b"], footer),
        accuracy_plots.sweep_plot({"FERPlus": ([1, 4], [50.0, 60.0], [0.0, 1.0])}, {"FERPlus": {1: 89.91, 4: 91.38}}, "N_h", "t", footer, logx=True),
        plots.efficiency_scatter([("x", [{"name": "a", "x": 10, "y": 20}, {"name": "p", "x": 16.5, "y": 43, "source": "paper"}])], footer),
        accuracy_plots.compare_bars({"FER2013": {"ours": (70.0, 1.0, 74.33)}}, footer),
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
    text = html.render_notebook(tmp_path / "p.ipynb", tmp_path / "p.html").read_text()
    assert 'src="data:image/png;base64,' in text
    assert not EXTERNAL.search(text), EXTERNAL.search(text)
    assert "<script" not in text.lower() and "cdn" not in text.lower()  # no require.js, MathJax, Mermaid or widgets
    assert 'href="index.html"' in text


def test_index_and_notes_pages(tmp_path: Path) -> None:
    report_plan = plan.make_plan("smoke")
    outcomes = {(paper.OURS, "synthetic", "paper"): [results.Outcome(None, fake_record("synthetic", 0.5, synthetic=True))]}
    wide, _, index = tables.table3_frames(report_plan, outcomes)
    published.save(published.Table3(index, published.frame(wide), [], {}, {}), tmp_path)
    published.save(published.Table4({}, [], {"synthetic": {paper.OURS: 50.0, "w/o AFC": 40.0, "w/o DAF": 60.0}}, {}), tmp_path)
    published.save(published.Fig8("synthetic", published.Series([0.3, 1.0], [50.0, 55.0], [0.0, 0.0])), tmp_path)
    notes = html.render_notes(tmp_path, "smoke").read_text()
    assert "lowered accuracy for 1 of 2 ablations (w/o AFC)" in notes
    assert f"{html.NO_WINNER} among 0.3, 1" in notes and "best 1" not in notes  # no ledger behind a winner: none stated
    supported = SimpleNamespace(claim="theta = 0.3 is best", verdict=evidence.SUPPORTED)
    assert "best 0.3 among 0.3, 1" in html.findings(tmp_path, "cpu", [supported])
    index_page = html.render_index(tmp_path, "smoke", {"01_table3_accuracy": "ok", "02_table4_ablations": "failed: ValueError: x"}, {"machine": "m"})
    text = index_page.read_text()
    body = text.split('<table class="summary">')[1].split("</table>")[0]
    assert body.count("<tr>") == 1 + 6  # header + five paper datasets + synthetic
    assert "SYNTHETIC" in text and "failed: ValueError: x" in text and "not reached" in text
    assert not EXTERNAL.search(text) and not EXTERNAL.search(notes)


def test_ledger_puts_judged_claims_first_and_tallies_every_verdict() -> None:
    """Rows are ordered by verdict (judged first, the paper's order kept within one), and the tally counts each."""
    assert set(html.LEDGER_ORDER) == set(evidence.LABELS)  # every verdict the rule can give has a place
    verdicts = [evidence.UNTESTABLE, evidence.CONTRADICTED, evidence.PENDING, evidence.UNTESTABLE, evidence.SUPPORTED]
    rows = [SimpleNamespace(claim=f"claim {i}", source="s", page="p", ours="o", verdict=v, why="w", extra=False)
            for i, v in enumerate(verdicts)]
    text = html.ledger_html(rows)
    assert re.findall(r">(claim \d)</a>", text) == ["claim 4", "claim 1", "claim 2", "claim 0", "claim 3"]
    assert "<b>5 claims:</b> 1 supported, 1 contradicted, 1 not trained yet, 2 not testable here." in text


def test_index_opens_with_the_claims_ledger_and_a_smoke_build_judges_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A smoke build that trains and executes nothing (cheap): the ledger still heads the index, one row per claim."""
    monkeypatch.setenv("FER_RESULTS", str(tmp_path / "results"))
    index = build.build("smoke", out_dir=tmp_path / "report", no_train=True, notebook_list=(), say=lambda _: None)
    expected = claims.ledger({}, list(paper.DATASETS), smoke=True, budget=PROFILES["smoke"].describe(),
                             figure_dataset=plan.SYNTHETIC)
    text = index.read_text(encoding="utf-8")
    assert text.index('<table class="ledger">') < text.index("<h2>Summary") < text.index("<h2>Pages")  # at the top
    assert escape(evidence.RULE) in text.split('<table class="ledger">')[0]  # the rule, above the table
    body = text.split('<table class="ledger">')[1].split("</table>")[0]
    rows = re.findall(r'<tr class="(claim|extra)">(.*?)</tr>', body, re.S)
    assert len(rows) == len(expected) and [k for k, _ in rows].count("extra") == sum(r.extra for r in expected) >= 1
    for (_, row), claim in zip(rows, expected):
        assert f'<a href="{claim.page}.html">' in row
        assert re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[3] == evidence.SMOKE
    meta = json.loads((tmp_path / "report" / "build.json").read_text())  # read back from the build's data
    assert [r["claim"] for r in meta["claims"]] == [r.claim for r in expected]
    assert {r["verdict"] for r in meta["claims"]} == {evidence.SMOKE}
    assert not (tmp_path / "results" / "runs").exists()  # nothing trained


def _predicting_record(folder: Path, seed: int, accuracy: float, labels: np.ndarray, rng: np.random.Generator) -> SimpleNamespace:
    """A finished record whose predictions.json gets about ``accuracy`` of its test faces right."""
    folder.mkdir(parents=True)
    right = rng.random(labels.size) < accuracy
    preds = np.where(right, labels, (labels + 1) % 7)
    stored = {"split": "test", "indices": list(range(labels.size)), "labels": labels.tolist(), "best_val": preds.tolist(),
              "last": preds.tolist(), "fingerprint": "f"}
    (folder / "predictions.json").write_text(json.dumps(stored))
    return SimpleNamespace(dir=folder, data={"fingerprint": "f"}, config=SimpleNamespace(seed=seed), classes=list("abcdefg"))


def test_a_page_names_a_winner_only_where_the_rule_backs_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 600)

    def options(**accuracy: float) -> dict:
        return {k: [results.Outcome(None, _predicting_record(tmp_path / f"{k}-{s}-{rng.integers(1e9)}", s, a, labels, rng))
                    for s in range(2)] for k, a in accuracy.items()}

    cpu = open_page("cpu", ["fer2013"], plan="", output_dir=tmp_path / "out", no_train=True)
    assert cpu.winner(options(h4=0.75, h1=0.55)) == "h4"
    assert cpu.winner(options(h4=0.60, h1=0.60)) is None  # noise: no winner at this budget
    assert cpu.winner(options(h4=0.75, h1=0.55), within_class="c") == "h4"
    assert cpu.winner(options(h4=0.75)) is None and cpu.winner({"a": [results.Outcome(None, None, "x")], "b": []}) is None
    smoke = open_page("smoke", output_dir=tmp_path / "out", no_train=True)
    assert smoke.winner(options(h4=0.9, h1=0.1)) is None  # smoke builds judge nothing
    assert "no winner at this budget" in html.NO_WINNER


def test_published_results_read_back_as_their_dataclasses(tmp_path: Path) -> None:
    regions = [published.RegionRow("DAF-MHSCA", "A_s", "attention", 0.12, 0.06, 2.0)]
    result = published.Attributions("synthetic", True, 0, [1, 2], {"DAF-MHSCA": "ok"}, [], regions)
    published.save(result, tmp_path)
    back = published.load(tmp_path, published.Attributions)
    assert back == result and isinstance(back.regions[0], published.RegionRow)
    t4 = published.Table4({}, ["x"], {}, {"AFC concat": published.Reading("ferplus", 60.0, None, {"mhv": 0.5})})
    published.save(t4, tmp_path)
    assert published.load(tmp_path, published.Table4).readings["AFC concat"].gates == {"mhv": 0.5}
    assert published.load(tmp_path, published.Fig5) is None  # that notebook did not publish
    assert len({r.STEM for r in published.RESULTS}) == len(plan.NOTEBOOKS) == len(published.RESULTS)


def test_existing_report_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    assert build.prepare_output(out, force=False) is None
    (out / "index.html").write_text("old")
    with pytest.raises(FileExistsError, match="--force"):
        build.prepare_output(out, force=False)
    aside = build.prepare_output(out, force=True)
    assert (aside / "index.html").read_text() == "old" and out.is_dir() and not any(out.iterdir())


# ---------------------------------------------------------------- notebooks


@pytest.mark.parametrize("stem", [s for s, _ in plan.NOTEBOOKS])
def test_notebook_has_parameters_and_no_outputs(stem: str) -> None:
    nb = nbformat.read(str(plan.NOTEBOOK_DIR / f"{stem}.ipynb"), as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for name in ("profile", "datasets", "seeds", "device", "output_dir", "plan", "no_train"):
        assert re.search(rf"^{name} = ", params[0].source, re.M), name
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


def test_fetch_never_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_RESULTS", str(tmp_path))
    cfgs = [plan.config("synthetic", "smoke", 0), plan.config("synthetic", "smoke", 0, model="no_such_model")]
    missing, unknown = results.fetch(cfgs, no_train=True)
    assert missing.record is None and missing.why.startswith("not trained yet")
    assert unknown.record is None and "unknown model 'no_such_model'" in unknown.why
    with pytest.raises(results.MissingRun, match=cfgs[0].id):  # the build trains every planned run first
        results.fetch(cfgs[:1])
    (skipped,) = results.fetch(cfgs[:1], skipped={cfgs[0].id: "DatasetError: broken"})
    assert skipped.why == "DatasetError: broken"
    assert not (tmp_path / "runs" / cfgs[0].id).exists()


def test_baselines_run_at_their_native_size_only_under_the_paper_profile() -> None:
    for profile, sizes in (("cpu", {PROFILES["cpu"].image_size}), ("paper", {224, 112})):
        got = {m: plan.baseline_config(m, "ferplus", profile, 0).plan.image_size for m in paper.FIGURE_METHODS}
        assert set(got.values()) == sizes, (profile, got)
    assert plan.baseline_config("DDAMFN", "ferplus", "paper", 0).plan.image_size == paper.NATIVE_IMAGE_SIZE["DDAMFN"] == 112


def test_findings_state_the_region_numbers_or_why_not(tmp_path: Path) -> None:
    rows = [published.RegionRow(m, "A_s", "attention", mass, 0.06, mass / 0.06) for m, mass in (("DAF-MHSCA", 0.12), ("DAN", 0.06))]
    rows.append(published.RegionRow("DAN", "grad-cam", "attribution", 0.03, 0.06, 0.5))
    published.save(published.Attributions("synthetic", True, 0, [], {}, [], rows), tmp_path)
    text = html.findings(tmp_path, "smoke")
    line = next(x for x in text.splitlines() if "key facial" in x)
    assert "cover 6.0%" in line and "DAF-MHSCA A_s 12.0% (lift 2.00)" in line and "DAN grad-cam 3.0% (lift 0.50)" in line
    published.save(published.Attributions("ferplus", False, 0, [], {}, [], []), tmp_path)
    assert "ferplus has no region masks" in html.findings(tmp_path, "cpu")


# ---------------------------------------------------------------- the plan


def test_the_plan_travels_to_the_notebooks_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan, "missing_data", lambda name, root=None: None)  # plan as if both datasets were here
    report_plan = plan.make_plan("cpu", ["fer2013", "ferplus"], no_train=True)
    report_plan.skipped = {"x": "why"}
    page = open_page(plan=report_plan.save(tmp_path), output_dir=tmp_path)
    assert [c.id for c in page.plan.configs()] == [c.id for c in report_plan.configs()]
    assert set(page.plan.groups) == set(plan.GROUPS) and page.plan.statuses == report_plan.statuses
    assert page.plan.no_train and page.plan.skipped == {"x": "why"}
    assert all(isinstance(k, tuple) for k in page.plan.groups["table3"])
    assert [c.id for c in report_plan.configs(["table3"])][:1] == [report_plan.groups["table3"][(paper.OURS, "fer2013", "scratch")][0].id]
    # the cpu scope: Table 3 and Table 4 with three seeds and the ResNet18 control; the sweeps with seed 0
    assert len(report_plan.groups["table3"][(paper.CONTROL, "ferplus", "scratch")]) == 3
    assert len(report_plan.groups["table4"][(paper.CONTROL, "fer2013")]) == 3
    assert all(len(cfgs) == 1 for cfgs in report_plan.groups["table5"].values())


def test_banner_and_scope_note_come_from_the_profile_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "SMOKE PROFILE" in plan.banner("smoke") and PROFILES["smoke"].describe() in plan.banner("smoke")
    assert PROFILES["cpu"].describe() in plan.banner("cpu") and "Expect lower numbers" in plan.banner("cpu")
    assert "Expect lower" not in plan.banner("paper")
    monkeypatch.setitem(PROFILES, "cpu", dataclasses.replace(PROFILES["cpu"], image_size=96))
    assert "96 px" in plan.banner("cpu")
    assert plan.scope_note("smoke") == ("N_h in {1, 4} only (paper: 1, 2, 4, 8, 16); theta in {0.3, 1} only "
                                        "(paper: 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1); alternative readings not trained")
    assert plan.scope_note("paper") == ""
    monkeypatch.setitem(plan.SCOPES, "paper", dataclasses.replace(plan.SCOPES["paper"], readings=False))
    assert plan.scope_note("paper") == "alternative readings not trained"


def test_an_unknown_dataset_fails_at_once() -> None:
    proc = subprocess.run([sys.executable, "-m", "fer_lib.report", "--profile", "cpu", "--datasets", "nosuch"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == ["[report] unknown dataset 'nosuch'; known: " + ", ".join(fer_lib.data.available_datasets())]
    with pytest.raises(plan.UnknownDataset, match="'nosuch'"):
        plan.make_plan("cpu", ["fer2013", "nosuch"])


def test_jobs_below_one_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        build.main(["--jobs", "0", "--plan"])
    assert exc.value.code == 2 and "--jobs must be 1 or more (1: one notebook at a time), not 0" in capsys.readouterr().err


NEW_DATASET = """
from pathlib import Path

from fer_lib.data import DatasetError, DatasetInfo, data_root, register_dataset
from fer_lib.data.folder import load_folder

CLASSES = ("a", "b")


def find_tinyfaces(root=None) -> Path:
    base = data_root(root) / "tinyfaces"
    if not (base / "train").is_dir():
        raise DatasetError(f"{base}: no train/ folder")
    return base


TINYFACES = DatasetInfo(label="TinyFaces", classes=CLASSES, stored_side=32, find=find_tinyfaces)


@register_dataset("tinyfaces", TINYFACES)
def load_tinyfaces(root=None, cache=False):
    return load_folder(find_tinyfaces(root), classes=CLASSES, image_size=32, name="tinyfaces", cache=cache)
"""


def test_a_dataset_registered_in_its_own_module_is_listed_found_planned_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "tinyfaces.py").write_text(textwrap.dedent(NEW_DATASET))
    monkeypatch.setattr(fer_lib.data, "__path__", [*fer_lib.data.__path__, str(modules)])  # found like the package's own modules
    monkeypatch.setattr(fer_lib.data, "DATASETS", dict(fer_lib.data.DATASETS))
    monkeypatch.setattr(fer_lib.data, "INFO", dict(fer_lib.data.INFO))
    monkeypatch.delitem(sys.modules, "fer_lib.data.tinyfaces", raising=False)
    monkeypatch.setenv("FER_DATA", str(tmp_path / "data"))
    assert "tinyfaces" in fer_lib.data.available_datasets()  # listed
    (status,) = [s for s in plan.dataset_statuses("cpu", ["tinyfaces"]) if s.name == "tinyfaces"]
    assert not status.run and status.why.startswith("TinyFaces not found under $FER_DATA=")
    (tmp_path / "data" / "tinyfaces" / "train").mkdir(parents=True)
    report_plan = plan.make_plan("cpu", ["tinyfaces"])
    assert report_plan.status("tinyfaces").run and report_plan.status("tinyfaces").label == "TinyFaces"  # found
    cfgs = report_plan.configs()
    assert cfgs and {c.dataset for c in cfgs} == {"tinyfaces"} and report_plan.figure == "tinyfaces"  # planned
    assert any("tinyfaces is not in Table 2" in n for n in plan.config("tinyfaces", "paper", 0).plan.notes)  # its (absent) Table 2 row
    assert plan.config("tinyfaces", "smoke", 0).plan.data_options["num_classes"] == 2  # its classes
    outcomes = {(paper.OURS, "tinyfaces", "scratch"): [results.Outcome(None, fake_record("tinyfaces", 0.6))]}
    _, _, index = tables.table3_frames(report_plan, outcomes)
    assert index.rows[-1]["Dataset"] == "TinyFaces" and index.rows[-1][tables.MEAN] == "60.00"  # reported
    assert len(index.rows) == len(plan.PAPER_DATASETS) + 1


def test_readme_ledger_block_lists_judged_claims_and_counts_the_rest(tmp_path: Path) -> None:
    from fer_lib.report import readme

    def row(claim: str, verdict: str, extra: bool = False) -> claims.Row:
        return claims.Row(claim=claim, source="Table 4", page="02", ours=f"ours | {claim}", verdict=verdict, why="w", extra=extra)

    rows = [row("a", evidence.CONTRADICTED, extra=True), row("b", evidence.INCONCLUSIVE), row("c", evidence.PENDING),
            row("d", evidence.UNTESTABLE), row("e", evidence.UNTESTABLE), row("f", evidence.SUPPORTED)]
    block = readme.ledger_section(rows, "cmd")
    table = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert table == ["| a | ours / a | contradicted | w |", f"| b | ours / b | {evidence.INCONCLUSIVE} | w |",
                     "| f | ours / f | supported | w |"]  # judged rows only, in the ledger's order, pipes escaped
    assert f"Other claims: 2 {evidence.UNTESTABLE}; 1 {evidence.PENDING}." in block  # in evidence.LABELS' order
    target = tmp_path / "README.md"
    target.write_text("x\n<!-- ledger:cpu:start -->\nold\n<!-- ledger:cpu:end -->\ny\n")
    readme.replace_block(target, "ledger:cpu", block)
    assert target.read_text() == f"x\n<!-- ledger:cpu:start -->\n{block}<!-- ledger:cpu:end -->\ny\n"
    with pytest.raises(SystemExit, match="no <!-- ledger:paper:start -->"):
        readme.replace_block(target, "ledger:paper", block)
