"""The report's tables: Table 3 beside the paper's, Tables 4 and 5 as sweeps, and the runs each page used."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Sequence

from fer_lib import paper
from fer_lib.plots import describe_runs
from fer_lib.report.plan import SYNTHETIC, ReportPlan, recipe_for
from fer_lib.report.published import IndexTable
from fer_lib.report.results import (DOMINANT_SHARE, Cell, Outcome, Reference, accuracy, cell, difference, one_class_flag,
                                    primary_selection, records)

PUB, MEAN, CI, SEEDS, GAP = "published %", "test acc % (mean ± std)", "95 % interval", "seeds", "gap (points)"
CONTROL_COL = f"{paper.CONTROL} % (mean ± std, interval, seeds)"
CHANCE_COL, MAJORITY_COL = "chance % (1/K)", "majority class % (test split)"
INDEX_COLUMNS = ["Dataset", PUB, MEAN, CI, SEEDS, GAP, CONTROL_COL, CHANCE_COL, MAJORITY_COL, "epoch chosen by",
                 "test acc % at the last epoch", "test acc % at the best test epoch†", "epochs", "image px", "training data", "note"]
CHANCE_ROW, MAJORITY_ROW, CONTROL_ROW = "chance (1/K)", "majority class (test split)", f"{paper.CONTROL} (ours)"
LEGEND = (f"{MEAN}: test accuracy at the epoch of best validation accuracy, mean ± sample std over seeds; {CI}: Student's t "
          "over seeds, none with fewer than 3 seeds; gap = reproduced − published; chance = 100 / K classes; majority class = "
          "the share of the test split's largest class, what a model answering only it scores; "
          f"\"predicts only X\": one class takes more than {100 * DOMINANT_SHARE:.0f} % of the test predictions")


def column(dataset: str) -> str:
    """A dataset's column head: the paper's spelling, "synthetic" for the built-in faces."""
    return "synthetic" if dataset == SYNTHETIC else paper.dataset_label(dataset)


def _why_not(plan: ReportPlan, dataset: str) -> str:
    s = plan.status(dataset)
    return s.why if s is not None and not s.run else ""


def empty_text(c: Cell) -> str:
    """What a cell without a number says: "not trained yet" (a --no-train build), else "not run: <why>"."""
    return "not trained yet" if c.why.startswith("not trained yet") else c.text()


def chance_text(ref: Reference | None) -> str:
    return "" if ref is None else f"{ref.chance:.2f} (1/{ref.classes})"


def majority_text(ref: Reference | None) -> str:
    return "" if ref is None else f"{ref.majority_share:.2f} ({ref.majority})"


def clean_note(note: str, dataset: str) -> str:
    """A run's note without a tail that contradicts it ("synthetic faces ..., not synthetic" on the synthetic faces)."""
    tail = f", not {dataset}"
    return note[: -len(tail)] if dataset == SYNTHETIC and note.endswith(tail) else note


def _run_notes(recs: Sequence[Any]) -> list[str]:
    notes: list[str] = []
    for r in recs:
        notes += [n for n in (clean_note(n, r.config.dataset) for n in r.plan.get("notes", [])) if n not in notes]
    return notes


def hardware(outcomes: dict[Any, list[Outcome]]) -> str:
    """The hardware the runs of a table were trained on."""
    recs = [r for outs in outcomes.values() for r in records(outs)]
    if not recs:
        return "no runs"
    text = describe_runs(recs)
    return text.split("hardware: ", 1)[1] if "hardware: " in text else text


def _wide(plan: ReportPlan, outcomes: dict[tuple[str, str, str], list[Outcome]]) -> Any:
    """Table 3 in the paper's layout: published rows, our rows ("—": not planned or not run), chance and majority rows."""
    import pandas as pd

    cols = [s.name for s in plan.statuses]
    wide: dict[str, dict[str, str]] = {}
    for method, row in paper.TABLE3.items():
        wide[f"{method} ({row['year']}, published)"] = {column(d): ("—" if row.get(d) is None else f"{row[d]:.2f}") for d in cols}
    refs: dict[str, Reference] = {}
    for (method, ds, recipe), outs in outcomes.items():
        label = f"{method}{' (ours)' if method == paper.CONTROL else ''}, reproduced here" + (f" (recipe {recipe})" if ds == "rafdb" else "")
        c = cell(outs)
        wide.setdefault(label, {column(d): "—" for d in cols})[column(ds)] = c.text() if c.values else empty_text(c)
        if c.reference is not None:
            refs.setdefault(ds, c.reference)
    wide["chance % (1/K), our test split"] = {column(d): chance_text(refs.get(d)) or "—" for d in cols}
    wide["majority class % of our test split"] = {column(d): majority_text(refs.get(d)) or "—" for d in cols}
    return pd.DataFrame.from_dict(wide, orient="index")


def _main_outcomes(plan: ReportPlan, outcomes: dict[tuple[str, str, str], list[Outcome]], dataset: str) -> list[Outcome]:
    """DAF-MHSCA on a dataset: Table 2 as printed where it was run, else the profile's recipe (cpu: scratch)."""
    return outcomes.get((paper.OURS, dataset, "paper")) or outcomes.get((paper.OURS, dataset, recipe_for(dataset, plan.profile)), [])


def _index_row(plan: ReportPlan, outcomes: dict[tuple[str, str, str], list[Outcome]], status: Any) -> tuple[dict[str, str], list[str]]:
    """One dataset's row of the index table and its notes; a dataset not run gets one "not run: <why>" cell."""
    pub = paper.published(paper.OURS, status.name)
    row = {"Dataset": status.label, PUB: "—" if pub is None else f"{pub:.2f}"}
    outs = _main_outcomes(plan, outcomes, status.name)
    recs = records(outs)
    if not status.run or not recs:
        why = status.why if not status.run else next((o.why for o in outs if o.why), "no run")
        row[MEAN] = "not trained yet" if why.startswith("not trained yet") else f"not run: {why}"
        return row, []
    main = cell(outs)
    control = cell(outcomes.get((paper.CONTROL, status.name, recipe_for(status.name, plan.profile)), []))
    notes = []
    if status.name == "rafdb":
        notes.append(f"Table 2's lr 0.1 with Adam as printed; with lr 1e-4 (recipe ours): {cell(outcomes.get((paper.OURS, 'rafdb', 'ours'), [])).text()}")
    if main.synthetic:
        notes.append("SYNTHETIC data: not comparable to the paper")
    facts = recs[0].data
    row.update({
        MEAN: main.number(), CI: main.interval(), SEEDS: main.n_seeds(), GAP: difference(main, pub),
        CONTROL_COL: control.text() if control.values else (empty_text(control) if control.why else "not in the plan"),
        CHANCE_COL: chance_text(main.reference), MAJORITY_COL: majority_text(main.reference),
        "epoch chosen by": "best validation accuracy" if primary_selection(recs[0]) == "best_val" else "last epoch (no validation split)",
        "test acc % at the last epoch": cell(outs, "last").spread(),
        "test acc % at the best test epoch†": cell(outs, "best_test").spread(),
        "epochs": str(recs[0].plan.get("epochs")), "image px": str(recs[0].plan.get("image_size")),
        "training data": ("built-in SYNTHETIC faces" if facts.get("synthetic") else f"{facts.get('n_train_used', '?')} faces")
                         + f", {len(facts.get('classes') or [])} classes",
    })
    return row, notes + _run_notes(recs)


def table3_frames(plan: ReportPlan, outcomes: dict[tuple[str, str, str], list[Outcome]]) -> tuple[Any, Any, IndexTable]:
    """Table 3 in the paper's layout (published rows + ours), the per-dataset comparison, and the
    index table (one row per dataset; a dataset not run says why once, in its row)."""
    import pandas as pd

    rows, notes = zip(*(_index_row(plan, outcomes, s) for s in plan.statuses)) if plan.statuses else ((), ())
    noted = [ns for ns in notes if ns]
    shared = [n for n in noted[0] if all(n in ns for ns in noted)] if len(noted) > 1 else []  # said once, in the caption
    for row, ns in zip(rows, notes):
        row["note"] = "; ".join(n for n in ns if n not in shared)
    comparison = pd.DataFrame(list(rows), columns=INDEX_COLUMNS).fillna("")
    caption = (f"DAF-MHSCA, reproduced. {LEGEND}. {paper.CONTROL}: our bare trunk with the same recipe and budget "
               "(not in the paper). † selected on the test split, as DAN and DDAMFN report: shown for comparison only. "
               + (f"Every run: {'; '.join(shared)}. " if shared else "") + "Hardware: " + hardware(outcomes))
    return _wide(plan, outcomes), comparison, IndexTable(INDEX_COLUMNS, comparison.to_dict(orient="records"), caption)


def _number_cells(c: Cell | None, pub: float | None, show_pub: bool) -> dict[str, str]:
    """The sub-columns of one dataset for one row: published %, mean ± std, interval, seeds, gap."""
    out = {PUB: "—" if pub is None else f"{pub:.2f}"} if show_pub else {}
    if c is None:
        out.update({MEAN: "not in scope", CI: "", SEEDS: ""})
    elif not c.values:
        out.update({MEAN: empty_text(c), CI: "", SEEDS: ""})
    else:
        out.update({MEAN: c.number(), CI: c.interval(), SEEDS: c.n_seeds()})
    if show_pub:
        out[GAP] = difference(c, pub) if c is not None and c.values and pub is not None else "—"
    return out


def sweep_frame(plan: ReportPlan, outcomes: dict[tuple[Any, str], list[Outcome]], published: dict[Any, dict[str, float]],
                row_name: str, datasets: Sequence[str] | None = None, rows: Sequence[Any] | None = None,
                control: Mapping[str, Sequence[Outcome]] | None = None) -> Any:
    """Tables 4 and 5 (and Figure 8's table): one row per variant, then the chance, majority-class and (where
    ``control`` gives dataset -> its outcomes) ResNet18 control rows. Per dataset run: published %, mean ± std,
    95 % interval, seeds, gap; a dataset not run keeps its published column only (the index says why)."""
    import pandas as pd

    rows = list(rows) if rows is not None else list(dict.fromkeys(k for k, _ in outcomes))
    datasets = list(datasets) if datasets is not None else list(dict.fromkeys(d for _, d in outcomes))
    datasets += [d for d in dict.fromkeys(d for _, d in outcomes) if d not in datasets]
    table: dict[Any, dict[tuple[str, str], str]] = {key: {} for key in rows}
    for ds in datasets:
        ran = ds in plan.ran and any(d == ds for _, d in outcomes)
        show_pub = any(published.get(key, {}).get(ds) is not None for key in rows)
        if not ran:
            for key in rows if show_pub else []:
                pub = published.get(key, {}).get(ds)
                table[key][(column(ds), PUB)] = "—" if pub is None else f"{pub:.2f}"
            continue
        cells = {key: cell(outcomes[(key, ds)]) if (key, ds) in outcomes else None for key in rows}
        for key, c in cells.items():
            table[key].update({(column(ds), k): v for k, v in _number_cells(c, published.get(key, {}).get(ds), show_pub).items()})
        ctrl = cell(control[ds]) if control and ds in control else None
        if ctrl is not None:
            table.setdefault(CONTROL_ROW, {}).update({(column(ds), k): v for k, v in _number_cells(ctrl, None, show_pub).items()})
        ref = next((c.reference for c in [*cells.values(), ctrl] if c is not None and c.reference is not None), None)
        if ref is not None:  # known from a run's test confusion matrix
            table.setdefault(CHANCE_ROW, {})[(column(ds), MEAN)] = chance_text(ref)
            table.setdefault(MAJORITY_ROW, {})[(column(ds), MEAN)] = majority_text(ref)
    order = [k for k in table if k not in (CONTROL_ROW, CHANCE_ROW, MAJORITY_ROW)] + [k for k in (CONTROL_ROW, CHANCE_ROW, MAJORITY_ROW) if k in table]
    df = pd.DataFrame.from_dict({k: table[k] for k in order}, orient="index").fillna("")
    df.index.name = row_name
    df.columns = pd.MultiIndex.from_tuples(df.columns) if len(df.columns) else df.columns
    return df


def sweep_caption(outcomes: dict[Any, list[Outcome]]) -> str:
    """The lines under a table: what its columns hold, then profile, data, seeds, epochs, image size and hardware of its runs."""
    recs = [r for outs in outcomes.values() for r in records(outs)]
    return (f"{LEGEND}. A dataset not run keeps its published column only (why: the index lists every dataset). "
            + (("Runs: " + describe_runs(recs) + ".") if recs else "No runs."))


def sweep_series(outcomes: dict[tuple[Any, str], list[Outcome]], dataset: str) -> tuple[list[float], list[float], list[float]]:
    """x, mean %, std % over seeds of one dataset's sweep, skipping points without runs."""
    xs, means, stds = [], [], []
    for (key, ds), outs in outcomes.items():
        c = cell(outs)
        if ds == dataset and c.mean is not None:
            xs.append(float(key))
            means.append(c.mean)
            stds.append(c.std)
    return xs, means, stds


def runs_frame(outcomes: Iterable[Outcome]) -> Any:
    """Provenance: every run a page used, with its id (folder under results/runs/) and what it changed."""
    import pandas as pd

    rows = []
    for o in outcomes:
        c, r = o.config, o.record
        row = {"run id": c.id, "model": c.model, "options": json.dumps({**c.model_options, **c.loss_options}) if (c.model_options or c.loss_options) else "",
               "recipe": c.recipe, "seed": c.seed}
        if r is None:
            row.update({"status": "not trained yet" if o.why.startswith("not trained yet") else f"not run: {o.why}"})
        else:
            sel = primary_selection(r)
            acc = accuracy(r, sel)
            flag = one_class_flag(r, sel)
            row.update({"status": "done", "epochs": len(r.history),
                        "test acc % (selected)": ("—" if acc is None else f"{acc:.2f}") + (f" — {flag}" if flag else ""),
                        "selected epoch": (r.metrics.get(sel) or {}).get("epoch"),
                        "train time (s)": round(sum(h.get("seconds", 0) or 0 for h in r.history)) or "",
                        "device": (r.env or {}).get("device", "")})
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def summary_markdown(summary: IndexTable | None) -> str:
    """The index table as markdown (for the README): one row per dataset."""
    if not summary:
        return "(Table 3 did not run)\n"
    lines = ["| " + " | ".join(summary.columns) + " |", "|" + "---|" * len(summary.columns)]
    for row in summary.rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in summary.columns) + " |")
    return "\n".join(lines) + "\n"
