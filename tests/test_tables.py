"""The report's tables and accuracy plots (fast, no training): numbers over seeds as evidence.seed_summary
gives them, "not run" once per absent dataset, the one-class flag, and chance / majority-class references."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import pytest

matplotlib.use("Agg")

from fer_lib import accuracy_plots, paper  # noqa: E402
from fer_lib.engine import RunConfig, evidence  # noqa: E402
from fer_lib.report import plan, results, tables  # noqa: E402

CLASSES = ["a", "b", "c"]
HEALTHY = [[8, 1, 1], [1, 17, 2], [0, 2, 8]]  # rows true (10, 20, 10 faces), columns predicted (9, 20, 11)
DEGENERATE = [[0, 10, 0], [0, 20, 0], [1, 9, 0]]  # 39 of 40 faces predicted "b"


def record(dataset: str, acc: float, seed: int = 0, confusion: list[list[int]] | None = None, options: dict | None = None) -> SimpleNamespace:
    """A finished run as the report reads it: accuracy and test confusion at every selection."""
    cfg = RunConfig(dataset=dataset, model="daf_mhsca", model_options=options or {}, profile="cpu", seed=seed)
    block = {"epoch": 2, "val": {"accuracy": acc}, "test": {"accuracy": acc, "confusion": confusion or HEALTHY}}
    return SimpleNamespace(id=cfg.id, config=cfg, plan={"epochs": 2, "image_size": 48, "notes": ["image size 48 px (paper: 224)"]},
                           data={"synthetic": False, "n_train": 90, "n_train_used": 90, "classes": CLASSES},
                           metrics={"last": block, "best_val": block, "best_test": block}, history=[],
                           env={"device": "cpu", "cpu": "Test CPU"}, classes=CLASSES)


def outs(dataset: str, accs: list[float], confusion: list[list[int]] | None = None, options: dict | None = None) -> list[results.Outcome]:
    recs = [record(dataset, a, s, confusion, options) for s, a in enumerate(accs)]
    return [results.Outcome(r.config, r) for r in recs]


def cpu_plan(ran: tuple[str, ...] = ("fer2013",)) -> plan.ReportPlan:
    """A plan with fixed statuses (not probed): the paper's five, of which ``ran`` were run."""
    statuses = [plan.DatasetStatus(d, d in ran, "" if d in ran else f"{paper.dataset_label(d)} not found under /data")
                for d in plan.PAPER_DATASETS]
    return plan.ReportPlan("cpu", list(ran), [0, 1, 2], statuses, None, "", {})


# ---------------------------------------------------------------- numbers over seeds


ACCS = [0.61, 0.64, 0.60, 0.62]


def test_mean_std_and_interval_are_seed_summary() -> None:
    s = evidence.seed_summary([100 * a for a in ACCS])
    c = results.cell(outs("fer2013", ACCS))
    assert c.spread() == f"{s.mean:.2f} ± {s.std:.2f}" == "61.75 ± 1.71"
    assert c.interval() == f"[{s.ci_low:.2f}, {s.ci_high:.2f}]" and c.n_seeds() == "4"
    assert c.text() == f"61.75 ± 1.71 (95 % interval [{s.ci_low:.2f}, {s.ci_high:.2f}], 4 seeds)"
    df = tables.sweep_frame(cpu_plan(), {("w/o AFC", "fer2013"): outs("fer2013", ACCS)}, paper.TABLE4, "variant")
    row = df.loc["w/o AFC"]
    assert (row[("FER2013", tables.MEAN)], row[("FER2013", tables.CI)], row[("FER2013", tables.SEEDS)]) == (c.spread(), c.interval(), "4")
    assert row[("FER2013", tables.PUB)] == "72.85" and row[("FER2013", tables.GAP)] == f"{s.mean - 72.85:+.2f}"


def test_one_seed_says_no_interval_and_a_missing_seed_is_counted() -> None:
    one = results.cell(outs("fer2013", [0.5]))
    assert one.spread() == "50.00" and one.interval() == "1 seed, no interval" and "±" not in one.text()
    assert one.text() == "50.00 (1 seed, no interval)"
    two = results.cell(outs("fer2013", [0.5, 0.6]) + [results.Outcome(None, None, results.NOT_TRAINED)])
    assert two.interval() == "2 seeds, no interval" and two.n_seeds() == "2 of 3"
    df = tables.sweep_frame(cpu_plan(), {(1, "fer2013"): outs("fer2013", [0.5])}, {}, "N_h")
    assert df.loc[1, ("FER2013", tables.CI)] == "1 seed, no interval" and df.loc[1, ("FER2013", tables.SEEDS)] == "1"


def test_table3_index_names_its_columns_and_says_not_run_once_per_dataset() -> None:
    report_plan = cpu_plan(("fer2013",))
    outcomes = {(paper.OURS, "fer2013", "scratch"): outs("fer2013", ACCS),
                (paper.CONTROL, "fer2013", "scratch"): outs("fer2013", [0.55, 0.57, 0.56], options=paper.CONTROL_OPTIONS)}
    wide, comparison, index = tables.table3_frames(report_plan, outcomes)
    assert {tables.MEAN, tables.CI, tables.SEEDS, tables.PUB, tables.GAP} <= set(index.columns)
    assert not {"Seeds", "Last epoch", "Reproduced"} & set(index.columns)
    by = {r["Dataset"]: r for r in index.rows}
    s = evidence.seed_summary([100 * a for a in ACCS])
    assert by["FER2013"][tables.MEAN] == f"{s.mean:.2f} ± {s.std:.2f}" and by["FER2013"][tables.CI] == f"[{s.ci_low:.2f}, {s.ci_high:.2f}]"
    assert by["FER2013"][tables.GAP] == f"{s.mean - 74.33:+.2f}" and by["FER2013"][tables.CONTROL_COL].startswith("56.00 ± 1.00 (95 % interval [")
    absent = [st.label for st in report_plan.statuses if not st.run]
    for label in absent:  # one cell per absent dataset says why; nothing else in its row does
        assert sum("not run" in str(v) for v in by[label].values()) == 1 and by[label][tables.MEAN] == f"not run: {label} not found under /data"
    assert sum("not run" in str(v) for r in index.rows for v in r.values()) == len(absent) == 4
    assert not wide.map(lambda v: "not run" in str(v)).any().any()  # the paper's layout: "—", the reasons are in the index
    assert wide.loc["DAF-MHSCA, reproduced here", "FER2013"].startswith(f"{s.mean:.2f} ± {s.std:.2f} (95 % interval")


def test_sweep_frame_keeps_only_the_published_column_of_a_dataset_not_run() -> None:
    df = tables.sweep_frame(cpu_plan(), {("w/o AFC", "fer2013"): outs("fer2013", [0.5])}, paper.TABLE4, "variant",
                            datasets=list(paper.DATASETS))
    assert [sub for ds, sub in df.columns if ds == "RAF-DB"] == [tables.PUB] and df.loc["w/o AFC", ("RAF-DB", tables.PUB)] == "91.69"
    assert not df.map(lambda v: "not run" in str(v)).any().any()


def test_readings_without_published_values_have_no_published_or_gap_column() -> None:
    df = tables.sweep_frame(cpu_plan(), {("x", "fer2013"): outs("fer2013", [0.5])}, {}, "reading")
    assert {sub for _, sub in df.columns} == {tables.MEAN, tables.CI, tables.SEEDS}


# ---------------------------------------------------------------- degenerate models


def test_one_class_flag_fires_on_a_degenerate_confusion_only() -> None:
    assert results.one_class_flag(record("fer2013", 0.5, confusion=DEGENERATE)) == "predicts only b (98 % of faces)"
    assert results.one_class_flag(record("fer2013", 0.8, confusion=HEALTHY)) == ""
    assert results.one_class_flag(record("fer2013", 0.5, confusion=[[0, 2, 0], [0, 4, 0], [1, 2, 1]])) == ""  # 80 %: not more than 80 %
    assert results.one_class_flag(record("fer2013", 0.5, confusion=[[0, 2, 0], [0, 4, 0], [0, 3, 1]])) == "predicts only b (90 % of faces)"
    flagged = results.cell(outs("fer2013", [0.5], confusion=DEGENERATE))
    assert flagged.number() == "50.00 — predicts only b (98 % of faces)"
    df = tables.sweep_frame(cpu_plan(), {(1, "fer2013"): outs("fer2013", [0.5], confusion=DEGENERATE),
                                         (4, "fer2013"): outs("fer2013", [0.8])}, {}, "N_h")
    assert "predicts only b" in df.loc[1, ("FER2013", tables.MEAN)] and "predicts only" not in df.loc[4, ("FER2013", tables.MEAN)]
    runs = tables.runs_frame(outs("fer2013", [0.5], confusion=DEGENERATE) + outs("fer2013", [0.8]))
    assert ["predicts only" in v for v in runs["test acc % (selected)"]] == [True, False]


def test_with_several_seeds_the_flag_names_each_degenerate_seed() -> None:
    mixed = [results.Outcome(None, record("fer2013", 0.5, 0, DEGENERATE)), results.Outcome(None, record("fer2013", 0.8, 1))]
    assert results.cell(mixed).flag == "seed 0 predicts only b (98 % of faces)"


# ---------------------------------------------------------------- what a model gets without looking


def test_chance_and_majority_class_of_a_known_label_set() -> None:
    ref = results.reference([10, 30, 20], CLASSES)
    assert ref.classes == 3 and ref.chance == pytest.approx(100 / 3) and (ref.majority, ref.majority_share) == ("b", 50.0)
    # from a record: the test split's true labels are the confusion rows (10, 20, 10), not its predictions
    split = results.split_reference(record("fer2013", 0.5, confusion=[[0, 0, 10], [0, 0, 20], [0, 0, 10]]))
    assert (split.majority, split.majority_share, split.chance) == ("b", 50.0, pytest.approx(100 / 3))
    with pytest.raises(ValueError):
        results.reference([0, 0, 0], CLASSES)


def test_sweep_frame_adds_chance_majority_and_control_rows() -> None:
    df = tables.sweep_frame(cpu_plan(), {(4, "fer2013"): outs("fer2013", [0.8])}, {}, "N_h",
                            control={"fer2013": outs("fer2013", [0.55, 0.57, 0.56], options=paper.CONTROL_OPTIONS)})
    assert list(df.index) == [4, tables.CONTROL_ROW, tables.CHANCE_ROW, tables.MAJORITY_ROW]
    assert df.loc[tables.CHANCE_ROW, ("FER2013", tables.MEAN)] == "33.33 (1/3)"
    assert df.loc[tables.MAJORITY_ROW, ("FER2013", tables.MEAN)] == "50.00 (b)"
    assert df.loc[tables.CONTROL_ROW, ("FER2013", tables.MEAN)] == "56.00 ± 1.00" and df.loc[tables.CONTROL_ROW, ("FER2013", tables.SEEDS)] == "3"


def test_a_note_never_contradicts_itself() -> None:
    note = "profile smoke: built-in synthetic faces with 7 classes, not synthetic"
    assert tables.clean_note(note, plan.SYNTHETIC) == "profile smoke: built-in synthetic faces with 7 classes"
    stand_in = "profile smoke: built-in synthetic faces with 7 classes, not fer2013"
    assert tables.clean_note(stand_in, "fer2013") == stand_in


# ---------------------------------------------------------------- plots


def _legend(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def test_error_bars_only_with_several_seeds_and_reference_lines_in_the_legend() -> None:
    ref, control = results.reference([10, 30, 20], CLASSES), evidence.seed_summary([55.0, 57.0, 56.0])
    lines = accuracy_plots.reference_lines(ref, control)
    one = accuracy_plots.sweep_plot({"FER2013": [(1.0, evidence.seed_summary([50.0])), (4.0, evidence.seed_summary([60.0]))]},
                                    {}, "N_h", "t", "footer", references={"FER2013": lines})
    three = accuracy_plots.sweep_plot({"FER2013": [(1.0, evidence.seed_summary([50.0, 52.0, 51.0]))]}, {}, "N_h", "t", "footer")
    assert not one.axes[0].containers and len(three.axes[0].containers) == 1  # errorbar containers
    assert not any("error bar" in t for t in _legend(one)) and any("error bar = 95 % interval over 3 seeds" in t for t in _legend(three))
    assert {"chance (1/3)", "majority class (b)", "ResNet18 control (mean of 3 seeds)"} <= set(_legend(one))
    assert sorted(round(line.get_ydata()[0], 2) for line in one.axes[0].lines[1:]) == [33.33, 50.0, 56.0]
    bars = accuracy_plots.compare_bars({"FER2013": {"x": accuracy_plots.Bar(evidence.seed_summary([50.0]), 72.85, "predicts only b (98 % of faces)")}},
                                       "footer", references={"FER2013": lines})
    assert not bars.axes[0].containers[0].errorbar and not any("error bar" in t for t in _legend(bars))
    assert any("predicts only b" in t.get_text() for t in bars.axes[0].texts)
    assert {"chance (1/K)", "majority class of the test split", "ResNet18 control (ours)"} <= set(_legend(bars))
    for fig in (one, three, bars):
        accuracy_plots.plt.close(fig)
