"""The report's tables: Table 3 beside the paper's, Tables 4 and 5 as sweeps, and the runs each page used."""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from fer_lib import paper
from fer_lib.plots import describe_runs
from fer_lib.report.plan import SYNTHETIC, ReportPlan, recipe_for
from fer_lib.report.published import IndexTable
from fer_lib.report.results import Outcome, accuracy, cell, difference, primary_selection, records

INDEX_COLUMNS = ["Dataset", "Published (Table 3)", "Reproduced", "Δ (points)", "Selected epoch", "Last epoch", "Best test epoch†",
                 "Seeds", "Epochs", "Image px", "Data", "Note"]


def column(dataset: str) -> str:
    """A dataset's column head: the paper's spelling, "synthetic" for the built-in faces."""
    return "synthetic" if dataset == SYNTHETIC else paper.dataset_label(dataset)


def _why_not(plan: ReportPlan, dataset: str) -> str:
    s = plan.status(dataset)
    return s.why if s is not None and not s.run else ""


def _notes(recs: Sequence[Any]) -> str:
    notes: list[str] = []
    for r in recs:
        for n in r.plan.get("notes", []):
            if n not in notes:
                notes.append(n)
    return "; ".join(notes)


def hardware(outcomes: dict[Any, list[Outcome]]) -> str:
    """The hardware the runs of a table were trained on."""
    recs = [r for outs in outcomes.values() for r in records(outs)]
    if not recs:
        return "no runs"
    text = describe_runs(recs)
    return text.split("hardware: ", 1)[1] if "hardware: " in text else text


def table3_frames(plan: ReportPlan, outcomes: dict[tuple[str, str, str], list[Outcome]]) -> tuple[Any, Any, IndexTable]:
    """Table 3 in the paper's layout (published rows + ours), the per-dataset comparison, and the
    index table (one row per dataset)."""
    import pandas as pd

    cols = [s.name for s in plan.statuses]
    wide = {}
    for method, row in paper.TABLE3.items():
        wide[f"{method} ({row['year']}, published)"] = {column(d): ("—" if row.get(d) is None else f"{row[d]:.2f}") for d in cols}
    for (method, ds, recipe), outs in outcomes.items():
        label = f"{method}, reproduced here" + (f" (recipe {recipe})" if ds == "rafdb" else "")
        row = wide.setdefault(label, {column(d): "not run" + (f": {_why_not(plan, d)}" if _why_not(plan, d) else "") for d in cols})
        row[column(ds)] = cell(outs).text()
    wide_df = pd.DataFrame.from_dict(wide, orient="index")

    rows = []
    for s in plan.statuses:
        published_value = paper.published(paper.OURS, s.name)
        row: dict[str, Any] = {"Dataset": s.label, "Published (Table 3)": "—" if published_value is None else f"{published_value:.2f}"}
        # Table 2 as printed where it was run, else the profile's recipe (cpu: scratch)
        outs = outcomes.get((paper.OURS, s.name, "paper")) or outcomes.get((paper.OURS, s.name, recipe_for(s.name, plan.profile)), [])
        recs = records(outs)
        if not s.run or not recs:
            why = s.why if not s.run else (next((o.why for o in outs if o.why), "no run"))
            row.update({"Reproduced": f"not run: {why}", "Δ (points)": "—", "Note": ""})
            rows.append(row)
            continue
        main = cell(outs)
        selection = primary_selection(recs[0])
        note = []
        if s.name == "rafdb":
            ours = cell(outcomes.get((paper.OURS, "rafdb", "ours"), []))
            note.append(f"Table 2's lr 0.1 with Adam as printed; with lr 1e-4 (recipe ours): {ours.text()}")
        if any(r.data.get("synthetic") for r in recs):
            note.append("SYNTHETIC data: not comparable to the paper")
        note.append(_notes(recs))
        row.update({
            "Reproduced": main.text(),
            "Δ (points)": difference(main, published_value),
            "Selected epoch": "best validation epoch" if selection == "best_val" else "last epoch (no validation split)",
            "Last epoch": cell(outs, "last").text(),
            "Best test epoch†": cell(outs, "best_test").text(),
            "Seeds": ", ".join(str(r.config.seed) for r in recs),
            "Epochs": str(recs[0].plan.get("epochs")),
            "Image px": str(recs[0].plan.get("image_size")),
            "Data": "synthetic" if recs[0].data.get("synthetic") else f"{recs[0].data.get('n_train_used', '?')} training faces",
            "Note": "; ".join(n for n in note if n),
        })
        rows.append(row)
    comparison = pd.DataFrame(rows, columns=INDEX_COLUMNS).fillna("")
    caption = ("Reproduced = DAF-MHSCA test accuracy at the epoch of best validation accuracy (mean ± sample std over "
               "seeds). † selected on the test split, as DAN and DDAMFN report: shown for comparison only. "
               "Δ = reproduced − published. Hardware: " + hardware(outcomes))
    return wide_df, comparison, IndexTable(INDEX_COLUMNS, comparison.to_dict(orient="records"), caption)


def sweep_frame(plan: ReportPlan, outcomes: dict[tuple[Any, str], list[Outcome]], published: dict[Any, dict[str, float]],
                row_name: str, datasets: Sequence[str] | None = None, rows: Sequence[Any] | None = None) -> Any:
    """Tables 4 and 5: one row per variant; per dataset the published value, ours and the difference.
    ``datasets`` (default: those in ``outcomes``) may include datasets not run: their cells say so."""
    import pandas as pd

    rows = list(rows) if rows is not None else list(dict.fromkeys(k for k, _ in outcomes))
    datasets = list(datasets) if datasets is not None else list(dict.fromkeys(d for _, d in outcomes))
    datasets += [d for d in dict.fromkeys(d for _, d in outcomes) if d not in datasets]
    table = []
    for key in rows:
        row: dict[Any, Any] = {row_name: key}
        for ds in datasets:
            pub = published.get(key, {}).get(ds)
            ours = cell(outcomes[(key, ds)]) if (key, ds) in outcomes else None
            row[(column(ds), "paper")] = "—" if pub is None else f"{pub:.2f}"
            row[(column(ds), "ours")] = ours.text() if ours is not None else ("not run" if _why_not(plan, ds) or ds not in plan.ran else "not in scope")
            row[(column(ds), "Δ")] = difference(ours, pub) if ours is not None else "—"
        table.append(row)
    df = pd.DataFrame(table).set_index(row_name)
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df


def sweep_caption(outcomes: dict[Any, list[Outcome]]) -> str:
    """The line under a table: profile, data, seeds, epochs, image size and hardware of its runs."""
    recs = [r for outs in outcomes.values() for r in records(outs)]
    return ("Runs: " + describe_runs(recs) + ".") if recs else "No runs."


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
            row.update({"status": f"not run: {o.why}"})
        else:
            sel = primary_selection(r)
            acc = accuracy(r, sel)
            row.update({"status": "done", "epochs": len(r.history), "test acc % (selected)": "—" if acc is None else f"{acc:.2f}",
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
