"""The reproducibility report: which runs each table and figure needs, and the offline HTML.

``python -m fer_lib.report --profile smoke`` (what ``run_all.sh`` calls) trains the missing runs,
executes ``notebooks/*.ipynb`` with papermill into ``results/report/<profile>/`` and renders an
index page, one page per notebook and the reproduction notes with nbconvert. The HTML needs no
network: images are embedded and the template loads no script from a CDN.

The notebooks call the ``*_configs`` functions here, so the training stage and the notebooks
agree on the runs; each config is an ordinary :class:`fer_lib.engine.RunConfig`.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from fer_lib import PROJECT_ROOT, RESULTS_DIR
from fer_lib import paper

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
NOTES_MD = PROJECT_ROOT / "docs" / "reproduction_notes.md"
REPORT_DIR = RESULTS_DIR / "report"

# Reading order: (notebook stem, page title).
NOTEBOOKS: tuple[tuple[str, str], ...] = (
    ("01_table3_accuracy", "Table 3: accuracy per dataset"),
    ("02_table4_ablations", "Table 4: ablations"),
    ("03_table5_heads", "Table 5: number of heads N_h"),
    ("04_fig5_confusion", "Figure 5: confusion matrices"),
    ("05_fig6_tsne", "Figure 6: t-SNE of test features"),
    ("06_fig7_attention", "Figure 7: attention maps"),
    ("07_fig8_theta", "Figure 8: sensitivity to theta"),
    ("08_fig9_efficiency", "Figure 9: computational efficiency"),
    ("09_explore_heads", "Explore: attention heads, interactive (static panels without a kernel)"),
    ("10_attributions", "Attributions: Integrated Gradients and Grad-CAM beside the attention maps; attention inside the key regions"),
    ("11_walkthrough", "Walkthrough: one face through ResNet18, AFC, DAF and MHSCA, equation by equation"),
)
NOTES_PAGE = "reproduction_notes"
PROFILES = ("smoke", "cpu", "paper")
SYNTHETIC = "synthetic"
PAPER_DATASETS = tuple(paper.DATASETS)
# Figures 5-7 and 8 use RAF-DB in the paper; without it, the first of these that was run.
FIGURE_PREFERENCE = ("rafdb", "ferplus", "fer2013", "affectnet7", "affectnet8")


@dataclass(frozen=True)
class Scope:
    """How much of each sweep a profile runs (the smoke profile keeps them tiny, and says so)."""

    seeds: tuple[int, ...]
    heads: tuple[int, ...]
    thetas: tuple[float, ...]
    readings: bool  # also train the alternative readings (gated loss weighting, AFC concat)
    sweep_overrides: dict[str, Any] = field(default_factory=dict)  # recipe overrides of Table 5, Fig. 8 and the readings
    ablation_overrides: dict[str, Any] = field(default_factory=dict)  # recipe overrides of Table 4 (its full-model row included)
    sweep_seeds: tuple[int, ...] | None = None  # seeds of Table 5, Fig. 8 and the readings (None: ``seeds``)
    note: str = ""


SCOPES: dict[str, Scope] = {
    "smoke": Scope(seeds=(0,), heads=(1, 4), thetas=(0.3, 1.0), readings=False,
                   note="smoke profile: N_h in {1, 4} and theta in {0.3, 1.0} only (paper: N_h 1-16, theta 0.1-1.0); "
                        "alternative readings not trained"),
    # 2 cores, every run at the profile's full budget (8 epochs, full training split): Table 3, the
    # control and Table 4 with 3 seeds; the sweeps and readings with one (scripts/cpu_study.py trains them in that order).
    "cpu": Scope(seeds=(0, 1, 2), heads=tuple(paper.TABLE5), thetas=(0.1, 0.3, 0.6, 1.0), readings=True, sweep_seeds=(0,),
                 note="cpu profile: Table 3, its ResNet18 control and Table 4 with seeds 0-2; Table 5, Figure 8 and the "
                      "readings with seed 0; Figure 8 at theta 0.1, 0.3, 0.6 and 1.0 only (paper: 0.1 ... 1.0)"),
    "paper": Scope(seeds=(0, 1, 2), heads=tuple(paper.TABLE5), thetas=paper.FIG8_THETAS, readings=True),
}


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DatasetStatus:
    """One row of the report: a dataset, whether it is run under this profile, and why not."""

    name: str
    run: bool
    why: str = ""

    @property
    def label(self) -> str:
        return "built-in synthetic faces" if self.name == SYNTHETIC else paper.dataset_label(self.name)


def _finders() -> dict[str, list[Callable[..., Any]]]:
    """The data layer's cheap file look-ups of each dataset (no decoding)."""
    from fer_lib.data import affectnet, fer2013, ferplus, rafdb

    return {
        "fer2013": [fer2013.find_fer2013_csv],
        "ferplus": [ferplus.find_ferplus_csv, fer2013.find_fer2013_csv],
        "rafdb": [rafdb.find_rafdb],
        "affectnet7": [affectnet.find_affectnet],
        "affectnet8": [affectnet.find_affectnet],
    }


def missing_data(name: str, root: str | os.PathLike | None = None) -> str | None:
    """None if ``name``'s files are under the data root, else why not (e.g. "RAF-DB not found under ...")."""
    from fer_lib.data import DATA_ENV, data_root

    base = data_root(root)
    where = f"${DATA_ENV}={base}" if os.environ.get(DATA_ENV) else str(base)
    for find in _finders().get(name, []):
        try:
            find(root)
        except (OSError, ValueError) as exc:  # DatasetError is a ValueError
            return f"{paper.dataset_label(name)} not found under {where} ({str(exc).splitlines()[0].split(';')[0]})"
    return None


def default_datasets(profile: str) -> list[str]:
    """The smoke profile runs the built-in synthetic data; the others the paper's five (those present)."""
    return [SYNTHETIC] if profile == "smoke" else list(PAPER_DATASETS)


def dataset_statuses(profile: str, datasets: Sequence[str] | None = None, root: str | os.PathLike | None = None) -> list[DatasetStatus]:
    """One status per paper dataset, then one per other requested dataset (e.g. synthetic), in order."""
    requested = list(datasets) if datasets else default_datasets(profile)
    out = []
    for name in PAPER_DATASETS:
        if name not in requested:
            why = ("the smoke profile trains on the built-in synthetic data only (use --profile cpu or paper)"
                   if profile == "smoke" else f"not requested (--datasets {' '.join(requested)})")
            out.append(DatasetStatus(name, False, why))
        elif profile == "smoke":
            out.append(DatasetStatus(name, True, "smoke profile: a synthetic stand-in, not the real data"))
        else:
            why = missing_data(name, root)
            out.append(DatasetStatus(name, why is None, why or ""))
    for name in requested:
        if name not in PAPER_DATASETS:
            out.append(DatasetStatus(name, True, "not one of the paper's datasets" if name != SYNTHETIC else "procedural faces, not comparable to the paper"))
    return out


def run_datasets(statuses: Sequence[DatasetStatus]) -> list[str]:
    return [s.name for s in statuses if s.run]


def figure_dataset(statuses: Sequence[DatasetStatus]) -> tuple[str | None, str]:
    """The dataset Figures 5-8 are drawn on and a sentence saying why (RAF-DB in the paper)."""
    ran = run_datasets(statuses)
    if not ran:
        return None, "no dataset was run"
    pick = next((d for d in FIGURE_PREFERENCE if d in ran), ran[0])
    if pick == paper.FIGURE_DATASET:
        return pick, "RAF-DB, as in the paper"
    why = next((s.why for s in statuses if s.name == paper.FIGURE_DATASET), "")
    label = "the built-in synthetic faces" if pick == SYNTHETIC else paper.dataset_label(pick)
    return pick, f"the paper draws this on RAF-DB, which is not run here ({why}); shown on {label} instead"


# ---------------------------------------------------------------- runs of each notebook


def recipe_for(dataset: str, profile: str) -> str:
    """Recipe of the sweeps: the profile's own where it is not Table 2 (cpu: scratch); else Table 2 as
    printed, except RAF-DB, whose printed lr 0.1 with Adam fails."""
    from fer_lib.engine import PROFILES

    if PROFILES[profile].recipe != "paper":
        return PROFILES[profile].recipe
    return "ours" if dataset == "rafdb" else "paper"  # Table 3 shows RAF-DB under both recipes


def config(dataset: str, profile: str, seed: int, model: str = "daf_mhsca", recipe: str | None = None,
           model_options: dict[str, Any] | None = None, loss_options: dict[str, Any] | None = None,
           overrides: dict[str, Any] | None = None) -> Any:
    """A :class:`RunConfig` of the report."""
    from fer_lib.engine import RunConfig

    return RunConfig(dataset=dataset, model=model, model_options=dict(model_options or {}), loss_options=dict(loss_options or {}),
                     recipe=recipe or recipe_for(dataset, profile), profile=profile, seed=int(seed), overrides=dict(overrides or {}))


def table3_configs(profile: str, datasets: Sequence[str], seeds: Sequence[int]) -> dict[tuple[str, str, str], list[Any]]:
    """(method, dataset, recipe) -> configs over seeds: DAF-MHSCA on every dataset (RAF-DB under both
    recipes), DAN and DDAMFN on the figure dataset (Fig. 5-7 need them)."""
    out: dict[tuple[str, str, str], list[Any]] = {}
    for ds in datasets:
        recipes = ("paper", "ours") if ds == "rafdb" and recipe_for(ds, profile) == "ours" else (recipe_for(ds, profile),)
        for recipe in recipes:
            out[(paper.OURS, ds, recipe)] = [config(ds, profile, s, recipe=recipe) for s in seeds]
        out[(paper.CONTROL, ds, recipe_for(ds, profile))] = [config(ds, profile, s, model_options=paper.CONTROL_OPTIONS) for s in seeds]
    fig_ds = next((d for d in FIGURE_PREFERENCE if d in datasets), datasets[0] if datasets else None)
    if fig_ds is not None:
        for method in ("DAN", "DDAMFN"):
            out[(method, fig_ds, recipe_for(fig_ds, profile))] = [baseline_config(method, fig_ds, profile, s) for s in seeds]
    return out


def baseline_config(method: str, dataset: str, profile: str, seed: int) -> Any:
    """The run of a compared method (DAN, DDAMFN; DAF-MHSCA is the Table 3 run)."""
    if method == paper.OURS:
        return config(dataset, profile, seed)
    cfg = config(dataset, profile, seed, model=paper.MODEL_OF_METHOD[method])
    if profile == "paper" and paper.NATIVE_IMAGE_SIZE[method] != cfg.plan.image_size:
        # Under the paper profile each baseline runs at its own paper's size; smoke and cpu share one size.
        cfg = replace(cfg, image_size=paper.NATIVE_IMAGE_SIZE[method])
    return cfg


READINGS: dict[str, dict[str, dict[str, Any]]] = {
    # The paper names a "gradient gating mechanism" without a rule (Sec. 2.5.4): our rule as a switch.
    "gated loss weighting": {"loss_options": {"weighting": "gated"}},
    # Eq. 1 / Alg. 1 sum the dilated branches; the prose says concatenate.
    "AFC concat": {"model_options": {"afc_fusion": "concat"}},
}


DEFAULT_READING = "default readings (Eq. 17 fixed weights, AFC sum)"


def table4_configs(profile: str, datasets: Sequence[str], seeds: Sequence[int], readings: bool = False) -> dict[tuple[str, str], list[Any]]:
    """(row, dataset) -> configs over seeds: the ablations of Table 4, plus, with ``readings``, the
    alternative readings and the default model at the scope's sweep size on the first dataset."""
    ablate = SCOPES[profile].ablation_overrides
    out = {(row, ds): [config(ds, profile, s, model_options=opts, overrides=ablate) for s in seeds]
           for ds in datasets for row, opts in paper.ABLATION_OPTIONS.items()}
    if readings and datasets:
        ds = next((d for d in FIGURE_PREFERENCE if d in datasets), datasets[0])
        over = SCOPES[profile].sweep_overrides
        sweep = sweep_seeds(profile, seeds)
        out[(DEFAULT_READING, ds)] = [config(ds, profile, s, overrides=over) for s in sweep]
        for row, opts in READINGS.items():
            out[(row, ds)] = [config(ds, profile, s, overrides=over, **opts) for s in sweep]
    return out


def sweep_seeds(profile: str, seeds: Sequence[int]) -> list[int]:
    """Seeds of Table 5, Figure 8 and the readings: the scope's ``sweep_seeds`` among ``seeds`` (else ``seeds``)."""
    chosen = SCOPES[profile].sweep_seeds
    return [s for s in seeds if s in chosen] or list(seeds[:1]) if chosen else list(seeds)


def table5_datasets(datasets: Sequence[str]) -> list[str]:
    """Table 5 has no FER2013 column: the datasets it covers among those run."""
    return [d for d in datasets if d in paper.TABLE5_DATASETS or d not in paper.DATASETS]


def table5_configs(profile: str, datasets: Sequence[str], seeds: Sequence[int], heads: Sequence[int]) -> dict[tuple[int, str], list[Any]]:
    """(N_h, dataset) -> configs over seeds."""
    over = SCOPES[profile].sweep_overrides
    return {(h, ds): [config(ds, profile, s, model_options={} if h == 4 else {"num_heads": h}, overrides=over)
                      for s in sweep_seeds(profile, seeds)]
            for ds in table5_datasets(datasets) for h in heads}


def figure_configs(profile: str, dataset: str, seed: int) -> dict[str, Any]:
    """Figures 5-7: method -> the config of DAN, DDAMFN and DAF-MHSCA on one dataset and seed."""
    return {m: baseline_config(m, dataset, profile, seed) for m in paper.FIGURE_METHODS}


def theta_configs(profile: str, dataset: str, seeds: Sequence[int], thetas: Sequence[float]) -> dict[float, list[Any]]:
    """Figure 8: theta -> configs over seeds (theta 0.3 is the default model, at the scope's sweep size)."""
    over = SCOPES[profile].sweep_overrides
    return {t: [config(dataset, profile, s, loss_options={} if math.isclose(t, 0.3) else {"theta": float(t)}, overrides=over)
                for s in sweep_seeds(profile, seeds)] for t in thetas}


def planned_configs(profile: str, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None) -> list[Any]:
    """Every run the report needs, without duplicates, in the order the notebooks use them."""
    scope = SCOPES[profile]
    seeds = list(seeds) if seeds else list(scope.seeds)
    statuses = dataset_statuses(profile, datasets)
    ran = run_datasets(statuses)
    fig_ds, _ = figure_dataset(statuses)
    groups: list[Iterable[list[Any]]] = [table3_configs(profile, ran, seeds).values(),
                                         table4_configs(profile, ran, seeds, scope.readings).values(),
                                         table5_configs(profile, ran, seeds, scope.heads).values()]
    if fig_ds is not None:
        groups.append([list(figure_configs(profile, fig_ds, seeds[0]).values())])
        groups.append(theta_configs(profile, fig_ds, seeds, scope.thetas).values())
    seen: dict[str, Any] = {}
    for group in groups:
        for cfgs in group:
            for cfg in cfgs:
                seen.setdefault(cfg.id, cfg)
    return list(seen.values())


# ---------------------------------------------------------------- fetching runs and reading metrics


@dataclass
class Outcome:
    """A run that the report asked for: its record, or why there is none."""

    config: Any
    record: Any = None
    why: str = ""


NO_TRAIN_ENV = "FER_REPORT_NO_TRAIN"


def fetch(cfgs: Iterable[Any], train: bool | None = None, device: str | None = None, progress: bool | None = None) -> list[Outcome]:
    """``get_run`` for each config; an unknown model, dataset or missing data gives a reason instead.
    ``train=None`` trains what is missing unless $FER_REPORT_NO_TRAIN is set (``--no-train``)."""
    from fer_lib.data import DatasetError
    from fer_lib.engine import ConfigError, get_run

    if train is None:
        train = not os.environ.get(NO_TRAIN_ENV)
    out = []
    for cfg in cfgs:
        try:
            rec = get_run(cfg, train=train, device=device or None, progress=progress)
            out.append(Outcome(cfg, rec, "" if rec is not None else "not trained yet (report built with --no-train)"))
        except (ConfigError, DatasetError, FileNotFoundError) as exc:
            out.append(Outcome(cfg, None, f"{type(exc).__name__}: {exc}"))
    return out


def primary_selection(record: Any) -> str:
    """The epoch reported first: chosen on validation; the last epoch where there is no validation split."""
    return "best_val" if record.metrics.get("best_val") else "last"


def accuracy(record: Any, selection: str | None = None, split: str = "test") -> float | None:
    """Accuracy in percent of one run at a selected epoch (None if that selection does not exist)."""
    block = record.metrics.get(selection or primary_selection(record))
    if not block or not block.get(split):
        return None
    value = block[split].get("accuracy")
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else 100.0 * float(value)


@dataclass
class Cell:
    """Mean and sample std over seeds of one table cell (percent), or why it is empty."""

    values: list[float] = field(default_factory=list)
    why: str = ""
    synthetic: bool = False

    @property
    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None

    @property
    def std(self) -> float:
        n = len(self.values)
        if n < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (n - 1))

    def text(self) -> str:
        if not self.values:
            return f"not run: {self.why}" if self.why else "not run"
        s = f"{self.mean:.2f}" + (f" ± {self.std:.2f} (n={len(self.values)})" if len(self.values) > 1 else "")
        return s + (" [synthetic]" if self.synthetic else "")


def cell(outcomes: Sequence[Outcome], selection: str | None = None) -> Cell:
    """A table cell from the outcomes of one config over seeds."""
    c = Cell()
    for o in outcomes:
        if o.record is None:
            c.why = c.why or o.why
            continue
        acc = accuracy(o.record, selection or primary_selection(o.record))
        if acc is None:
            c.why = c.why or f"no {selection or 'selected'} epoch"
            continue
        c.values.append(acc)
        c.synthetic = c.synthetic or bool(o.record.data.get("synthetic"))
    if c.values and len(c.values) < len(outcomes):
        c.why = f"{len(outcomes) - len(c.values)} of {len(outcomes)} seeds missing"
    return c


def difference(ours: Cell, published: float | None) -> str:
    """Reproduced minus published, in points; never computed against synthetic data."""
    if published is None:
        return "no published value"
    if ours.mean is None:
        return "—"
    if ours.synthetic:
        return "not comparable (synthetic data)"
    return f"{ours.mean - published:+.2f}"


def records(outcomes: Iterable[Outcome]) -> list[Any]:
    return [o.record for o in outcomes if o.record is not None]


def load_run_data(record: Any) -> Any:
    """The FaceData a run was trained on (same loader and options as the engine)."""
    from fer_lib.engine.inputs import load_data

    data, _ = load_data(record.plan["dataset"], **record.plan.get("data_options", {}))
    return data


def model_of(record: Any, device: str | None = None) -> tuple[Any, Any]:
    """``load_model`` of a run; when its checkpoint is missing (a fresh clone) it is rebuilt first."""
    from fer_lib.engine import load_model, rebuild_weights

    try:
        return load_model(record, device=device or "cpu")
    except FileNotFoundError:
        if os.environ.get(NO_TRAIN_ENV):
            raise
        print(f"checkpoint of {record.id} missing: retraining it to rebuild the weights")
        rebuild_weights(record, device=device or None, strict=False)
        return load_model(record, device=device or "cpu")


def write_summary(output_dir: str | os.PathLike, name: str, summary: dict[str, Any]) -> None:
    """A notebook's results as ``<output_dir>/<name>.json`` beside its page (the index page reads Table 3's)."""
    path = Path(output_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    """DataFrames as {columns, index, data} (multi-level column names joined by " / "); else str()."""
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):
        cols = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in obj.columns]
        return {"columns": cols, "index": [str(i) for i in obj.index], "data": obj.astype(object).values.tolist()}
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def banner(profile: str) -> str:
    """The warning every page of a smoke report opens with (markdown)."""
    if profile == "smoke":
        return ("**SMOKE PROFILE — built-in SYNTHETIC data.** These runs train a few epochs on procedurally "
                "drawn faces to check that the pipeline works end to end. Their numbers are NOT comparable "
                "to the paper's and say nothing about DAF-MHSCA.")
    if profile == "cpu":
        return ("**CPU profile** — real data, scaled down to fit 2 CPU cores (smaller images, fewer epochs, a "
                "training subset; each figure lists the reductions). The ResNet18 trunk starts from random weights: "
                "the paper's MS-Celeb-1M checkpoint is not available here. Expect lower numbers than the paper.")
    return ("**Paper profile** — Table 2's setting (224 px, 40 epochs, full data), except that the ResNet18 trunk "
            "starts from random weights: the paper's MS-Celeb-1M checkpoint is not available here.")


def save_figure(fig: Any, output_dir: str | os.PathLike, name: str) -> Path:
    """Also keep each figure as a PNG beside the report."""
    path = Path(output_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


# ---------------------------------------------------------------- what the notebooks share


@dataclass
class Context:
    """A notebook's parameters, resolved: the datasets run and why the others are not."""

    profile: str
    datasets: list[str]
    seeds: list[int]
    device: str
    output_dir: Path
    statuses: list[DatasetStatus]
    scope: Scope

    @property
    def ran(self) -> list[str]:
        return run_datasets(self.statuses)

    @property
    def figure(self) -> tuple[str | None, str]:
        return figure_dataset(self.statuses)

    def status(self, name: str) -> DatasetStatus | None:
        return next((s for s in self.statuses if s.name == name), None)


def context(profile: str, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
            device: str | None = "", output_dir: str | os.PathLike | None = None) -> Context:
    """Resolve the papermill parameters every notebook takes."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    datasets = list(datasets) if datasets else default_datasets(profile)
    seeds = [int(s) for s in seeds] if seeds else list(SCOPES[profile].seeds)
    out = Path(output_dir) if output_dir else REPORT_DIR / profile
    out.mkdir(parents=True, exist_ok=True)
    return Context(profile, datasets, seeds, device or "", out, dataset_statuses(profile, datasets), SCOPES[profile])


def header(ctx: Context) -> str:
    """Markdown opening every page: the profile banner and which datasets ran."""
    lines = [banner(ctx.profile), "", f"Seeds: {', '.join(map(str, ctx.seeds))}." + (f" {ctx.scope.note}." if ctx.scope.note else ""), "",
             "| dataset | run here | why / note |", "|---|---|---|"]
    for s in ctx.statuses:
        lines.append(f"| {s.label} | {'yes' if s.run else 'no'} | {('not run: ' if not s.run else '') + s.why} |")
    return "\n".join(lines)


def _why_not(ctx: Context, dataset: str) -> str:
    s = ctx.status(dataset)
    return s.why if s is not None and not s.run else ""


def _col(dataset: str) -> str:
    return "synthetic" if dataset == SYNTHETIC else paper.dataset_label(dataset)


def _notes(recs: Sequence[Any]) -> str:
    notes: list[str] = []
    for r in recs:
        for n in r.plan.get("notes", []):
            if n not in notes:
                notes.append(n)
    return "; ".join(notes)


def table3_frames(ctx: Context, outcomes: dict[tuple[str, str, str], list[Outcome]]) -> tuple[Any, Any, dict[str, Any]]:
    """Table 3 in the paper's layout (published rows + ours), the per-dataset comparison, and the
    index summary (one row per dataset)."""
    import pandas as pd

    cols = [s.name for s in ctx.statuses]
    wide = {}
    for method, row in paper.TABLE3.items():
        wide[f"{method} ({row['year']}, published)"] = {_col(d): ("—" if row.get(d) is None else f"{row[d]:.2f}") for d in cols}
    for (method, ds, recipe), outs in outcomes.items():
        label = f"{method}, reproduced here" + (f" (recipe {recipe})" if ds == "rafdb" else "")
        row = wide.setdefault(label, {_col(d): "not run" + (f": {_why_not(ctx, d)}" if _why_not(ctx, d) else "") for d in cols})
        row[_col(ds)] = cell(outs).text()
    wide_df = pd.DataFrame.from_dict(wide, orient="index")

    index_cols = ["Dataset", "Published (Table 3)", "Reproduced", "Δ (points)", "Selected epoch", "Last epoch", "Best test epoch†",
                  "Seeds", "Epochs", "Image px", "Data", "Note"]
    rows = []
    for s in ctx.statuses:
        published_value = paper.published(paper.OURS, s.name)
        row: dict[str, Any] = {"Dataset": s.label, "Published (Table 3)": "—" if published_value is None else f"{published_value:.2f}"}
        outs = outcomes.get((paper.OURS, s.name, "paper"), [])
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
    comparison = pd.DataFrame(rows, columns=index_cols).fillna("")
    caption = ("Reproduced = DAF-MHSCA test accuracy at the epoch of best validation accuracy (mean ± sample std over "
               "seeds). † selected on the test split, as DAN and DDAMFN report: shown for comparison only. "
               "Δ = reproduced − published. Hardware: " + plots_hardware(outcomes))
    summary = {"columns": index_cols, "rows": comparison.to_dict(orient="records"), "caption": caption}
    return wide_df, comparison, summary


def plots_hardware(outcomes: dict[Any, list[Outcome]]) -> str:
    """The hardware the runs of a table were trained on."""
    from fer_lib.plots import describe_runs

    recs = [r for outs in outcomes.values() for r in records(outs)]
    if not recs:
        return "no runs"
    text = describe_runs(recs)
    return text.split("hardware: ", 1)[1] if "hardware: " in text else text


def sweep_frame(ctx: Context, outcomes: dict[tuple[Any, str], list[Outcome]], published: dict[Any, dict[str, float]],
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
            row[(_col(ds), "paper")] = "—" if pub is None else f"{pub:.2f}"
            row[(_col(ds), "ours")] = ours.text() if ours is not None else ("not run" if _why_not(ctx, ds) or ds not in ctx.ran else "not in scope")
            row[(_col(ds), "Δ")] = difference(ours, pub) if ours is not None else "—"
        table.append(row)
    df = pd.DataFrame(table).set_index(row_name)
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df


def sweep_caption(outcomes: dict[Any, list[Outcome]]) -> str:
    """The line under a table: profile, data, seeds, epochs, image size and hardware of its runs."""
    from fer_lib.plots import describe_runs

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


def data_facts(record: Any) -> dict[str, Any]:
    """What a run's data held: split sizes, class names, whether synthetic (for the notes)."""
    keep = ("name", "n_train", "n_train_used", "n_val", "n_test", "classes", "synthetic", "loader")
    return {k: record.data.get(k) for k in keep if k in record.data}


def mean_gates(recs: Sequence[Any]) -> dict[str, float]:
    """Mean over epochs and seeds of the loss gates a run logged (``loss_gate_*``; empty with fixed weights)."""
    values: dict[str, list[float]] = {}
    for r in recs:
        for row in r.history:
            for k, v in row.items():
                if k.startswith("loss_gate_") and isinstance(v, (int, float)):
                    values.setdefault(k[len("loss_gate_"):], []).append(float(v))
    return {k: sum(v) / len(v) for k, v in values.items()}


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


def figure_outcomes(ctx: Context) -> tuple[str | None, str, dict[str, Outcome]]:
    """Figures 5-7: the dataset, why it was chosen, and DAN / DDAMFN / DAF-MHSCA (first seed) on it."""
    dataset, why = ctx.figure
    if dataset is None:
        return None, why, {}
    cfgs = figure_configs(ctx.profile, dataset, ctx.seeds[0])
    return dataset, why, {m: fetch([c], device=ctx.device)[0] for m, c in cfgs.items()}


# ---------------------------------------------------------------- executing and rendering


OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{# Offline: no require.js, MathJax, Mermaid or widget scripts from a CDN. #}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block body_header -%}
{{ super() }}
<nav style="padding: 8px 16px; font-family: sans-serif; font-size: 14px;"><a href="index.html">&larr; report index</a></nav>
{%- endblock body_header -%}
"""

PAGE_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.banner { border: 2px solid #d7191c; background: #fff3f0; padding: 0.6em 1em; margin: 1em 0; }
.ok { color: #1a9641; } .failed { color: #d7191c; font-weight: bold; } .pending { color: #888; }
code, pre { background: #f6f6f6; padding: 1px 3px; }
pre { padding: 0.6em; overflow-x: auto; }
"""


def html_exporter() -> Any:
    """nbconvert's lab template without CDN scripts; input cells hidden (the .ipynb beside it has the code)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(extra_loaders=[DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})], template_name="lab")
    exporter.template_file = "offline.html.j2"
    exporter.embed_images = True
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    return exporter


def render_notebook(ipynb: str | os.PathLike, html_path: str | os.PathLike) -> Path:
    """Write the offline HTML page of an executed notebook."""
    import nbformat

    nb = nbformat.read(str(ipynb), as_version=4)
    nb.metadata.pop("widgets", None)
    body, _ = html_exporter().from_notebook_node(nb, resources={"metadata": {"name": Path(ipynb).stem}})
    Path(html_path).write_text(body, encoding="utf-8")
    return Path(html_path)


def markdown_to_html(text: str) -> str:
    """Markdown (with tables) to HTML, through the markdown renderer nbconvert itself uses."""
    import mistune

    return mistune.create_markdown(plugins=["table", "strikethrough"], escape=False)(text)


def page(title: str, body: str) -> str:
    """A standalone HTML page with inline CSS (no external resource)."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{PAGE_CSS}</style></head><body>\n{body}\n</body></html>\n")


def _load(out_dir: Path, stem: str) -> dict[str, Any]:
    path = out_dir / f"{stem}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} %"


def findings(out_dir: Path, profile: str) -> str:
    """Markdown: what this build's runs say about each oddity, read from the notebooks' JSON summaries."""
    lines = [f"## What this build's runs say (profile {profile})", ""]
    if profile == "smoke":
        lines += ["*Smoke profile: synthetic data and two epochs. The lines below only show that each check runs; "
                  "they say nothing about the paper.*", ""]
    t3, t4, t5 = _load(out_dir, "01_table3_accuracy"), _load(out_dir, "02_table4_ablations"), _load(out_dir, "03_table5_heads")
    t8, t9 = _load(out_dir, "07_fig8_theta"), _load(out_dir, "08_fig9_efficiency")
    rafdb = t3.get("rafdb_recipes")
    lines.append("- **RAF-DB lr 0.1 with Adam**: " + (
        f"Table 2 as printed (lr 0.1): {rafdb.get('paper', '—')}; with lr 1e-4 (recipe ours): {rafdb.get('ours', '—')}."
        if rafdb else "not run in this build (RAF-DB absent or not requested)."))
    for name, facts in (t3.get("data") or {}).items():
        if facts.get("synthetic"):
            continue
        lines.append(f"- **{paper.dataset_label(name)} as loaded**: {facts.get('n_train')} training, {facts.get('n_val')} validation, "
                     f"{facts.get('n_test')} test faces; {len(facts.get('classes') or [])} classes ({', '.join(facts.get('classes') or [])}).")
    for name, r in (t4.get("readings") or {}).items():
        gates = ", ".join(f"{k} {v:.3f}" for k, v in (r.get("gates") or {}).items())
        lines.append(f"- **{name}** on {r.get('dataset')}: {_pct(r.get('ours'))} against {_pct(r.get('default'))} for the default reading"
                     + (f"; mean gates {gates} (1.0 = Eq. 17's fixed weights)" if gates else "") + ".")
    if not t4.get("readings"):
        lines.append("- **Gradient gating, AFC sum vs concat**: the alternative readings were not trained in this build.")
    for ds, variants in (t4.get("ablations") or {}).items():
        full = variants.get(paper.OURS)
        if full is None:
            continue
        lower = [v for v, m in variants.items() if v != paper.OURS and m is not None and m < full]
        lines.append(f"- **Table 4 on {paper.dataset_label(ds)}**: full model {_pct(full)}; removing a component lowered accuracy for "
                     f"{len(lower)} of {len([v for v in variants if v != paper.OURS])} ablations ({', '.join(lower) or 'none'}); the paper: all four.")
    for name, ser in (t5.get("series") or {}).items():
        if ser.get("mean"):
            best = ser["heads"][ser["mean"].index(max(ser["mean"]))]
            lines.append(f"- **N_h on {name}**: best {best:g} among {', '.join(f'{h:g}' for h in ser['heads'])} (paper: 4).")
    if t8.get("mean"):
        best = t8["theta"][t8["mean"].index(max(t8["mean"]))]
        lines.append(f"- **theta on {t8.get('dataset')}**: best {best:g} among {', '.join(f'{t:g}' for t in t8['theta'])} (paper: 0.3 on RAF-DB).")
    t10 = _load(out_dir, "10_attributions")
    regions = [r for r in t10.get("regions", []) if r.get("family")]
    if regions:
        def mass(family: str) -> str:
            return "; ".join(f"{r['model']} {r['map']} {r['mass in regions']:.1%} (lift {r['lift (mass / area)']:.2f})"
                             for r in regions if r["family"] == family)
        lines.append(f"- **Maps \"concentrate on key facial action units\"** (Sec. 3.5), on {t10.get('dataset')}"
                     f"{' (SYNTHETIC)' if t10.get('synthetic') else ''}: the regions that carry each expression cover "
                     f"{regions[0]['region area']:.1%} of the face (lift 1 = no preference). Attention mass inside: {mass('attention')}. "
                     f"Attribution mass inside: {mass('attribution')}.")
    elif t10:
        lines.append(f"- **Maps on key facial regions**: {t10.get('dataset')} has no region masks; the smoke report "
                     "(`./run_all.sh`) measures this on the built-in faces, whose regions are known.")
    ours = next((r for r in t9.get("rows", []) if r.get("label") == paper.OURS), None)
    if ours:
        env = t9.get("machine", {})
        lines.append(f"- **16.5 MB and 43 ms/iter**: DAF-MHSCA as built has {ours['params'] / 1e6:.2f} M parameters, "
                     f"{ours['param_mb']:.1f} MiB in fp32; training memory {ours['train_total_mb']:.0f} MiB ({ours['train_memory_kind']}); "
                     f"{ours['ms_per_iter']:.0f} ms per step at batch {ours['train_batch']} and {ours['image_size']} px on {env.get('device', '?')}.")
    return "\n".join(lines) + "\n"


def render_notes(out_dir: Path, profile: str = "smoke") -> Path:
    """The reproduction notes page: docs/reproduction_notes.md, then what this build's runs say."""
    text = NOTES_MD.read_text(encoding="utf-8") if NOTES_MD.exists() else "# Reproduction notes\n\n(docs/reproduction_notes.md is missing)\n"
    body = markdown_to_html(text + "\n" + findings(out_dir, profile))
    path = out_dir / f"{NOTES_PAGE}.html"
    path.write_text(page("Reproduction notes", f'<p><a href="index.html">&larr; report index</a></p>\n<div class="banner">{markdown_to_html(banner(profile))}</div>\n' + body), encoding="utf-8")
    return path


def summary_markdown(summary: dict[str, Any] | None) -> str:
    """The index table as markdown (for the README): one row per dataset."""
    if not summary:
        return "(Table 3 did not run)\n"
    cols = summary["columns"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in summary["rows"]:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def render_index(out_dir: Path, profile: str, pages: dict[str, str], meta: dict[str, Any]) -> Path:
    """index.html: banner, the summary table (published vs reproduced per dataset), links, status."""
    summary_file = out_dir / "01_table3_accuracy.json"
    summary = json.loads(summary_file.read_text())["index"] if summary_file.exists() else None
    parts = [f"<h1>DAF-MHSCA reproduction report — profile <code>{html.escape(profile)}</code></h1>",
             f'<div class="banner">{markdown_to_html(banner(profile))}</div>',
             "<p>Paper: Shao, Li and Wu, <i>A Directional Attention Fusion and Multi-Head Spatial-Channel Attention "
             "Network for Facial Expression Recognition</i> (2025). Published numbers are typed in from the paper "
             "(fer_lib/paper.py); reproduced numbers come from the run records under results/runs/.</p>"]
    parts.append("<h2>Summary: DAF-MHSCA test accuracy (%), published vs reproduced</h2>")
    if summary:
        cols = summary["columns"]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in summary["rows"])
        parts.append(f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>')
        parts.append(f"<p>{html.escape(summary.get('caption', ''))}</p>")
    else:
        parts.append('<p class="failed">Table 3 has not run: no summary.</p>')
    parts.append("<h2>Pages</h2><ol>")
    for stem, title in NOTEBOOKS:
        state = pages.get(stem, "not reached")
        link = f'<a href="{stem}.html">{html.escape(title)}</a>' if (out_dir / f"{stem}.html").exists() else html.escape(title)
        css = "ok" if state == "ok" else ("failed" if state.startswith("failed") else "pending")
        parts.append(f'<li>{link} — <span class="{css}">{html.escape(state)}</span></li>')
    parts.append(f'<li><a href="{NOTES_PAGE}.html">Reproduction notes</a> — readings, oddities of the paper, what our runs say</li></ol>')
    parts.append("<h2>This build</h2><table>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items()) + "</table>")
    path = out_dir / "index.html"
    path.write_text(page(f"DAF-MHSCA reproduction ({profile})", "\n".join(parts)), encoding="utf-8")
    return path


def machine() -> str:
    """CPU model, core count and GPU (if any) of this machine, without host name."""
    import platform

    import torch

    from fer_lib.engine.runs import _cpu_name

    gpu = f", GPU {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}" if torch.cuda.is_available() else ""
    return f"{_cpu_name()} ({os.cpu_count()} cores){gpu}; {platform.system()} {platform.release()}; torch {torch.__version__}"


def prepare_output(out_dir: Path, force: bool) -> Path | None:
    """Refuse to reuse a non-empty report folder unless ``force``; then move the old one aside (never deleted)."""
    if not out_dir.exists() or not any(out_dir.iterdir()):
        out_dir.mkdir(parents=True, exist_ok=True)
        return None
    if not force:
        raise FileExistsError(f"{out_dir} already holds a report: pass --force to move it aside (to {out_dir.name}.<date>) and rebuild")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(out_dir.stat().st_mtime))
    aside = out_dir.with_name(f"{out_dir.name}.{stamp}")
    k = 1
    while aside.exists():
        aside = out_dir.with_name(f"{out_dir.name}.{stamp}-{k}")
        k += 1
    out_dir.rename(aside)
    out_dir.mkdir(parents=True)
    return aside


def train_missing(cfgs: Sequence[Any], device: str | None = None, say: Callable[[str], None] = print) -> list[Outcome]:
    """Train every config that has no record yet, one after another, with a counter."""
    from fer_lib.engine import get_run

    outcomes = []
    for k, cfg in enumerate(cfgs, start=1):
        head = f"[report] run {k}/{len(cfgs)} {cfg.id}"
        why = _untrainable_reason(cfg)
        if why:
            say(f"{head}: not run ({why})")
            outcomes.append(Outcome(cfg, None, why))
            continue
        done = get_run(cfg, train=False)
        if done is not None:
            say(f"{head}: cached")
            outcomes.append(Outcome(cfg, done))
            continue
        what = " ".join(str(x) for x in (cfg.model, cfg.model_options or "", cfg.loss_options or "", cfg.overrides or "") if x)
        say(f"{head}: training ({what}, seed {cfg.seed})")
        t0 = time.time()
        outcomes.extend(fetch([cfg], train=True, device=device))
        say(f"{head}: done in {time.time() - t0:.0f} s")
    return outcomes


def _untrainable_reason(cfg: Any) -> str:
    """Why the engine would refuse ``cfg`` (unknown model, dataset, recipe...), or ""."""
    from fer_lib.engine import ConfigError
    from fer_lib.engine.runs import validate

    try:
        validate(cfg)
    except ConfigError as exc:
        return str(exc)
    return ""


class NotebookFailed(RuntimeError):
    """A notebook raised: its name and the error's last line (the executed .ipynb and its page keep the traceback)."""

    def __init__(self, stem: str, error: str):
        super().__init__(f"{stem}: {error}")
        self.stem, self.error = stem, error


def error_line(exc: BaseException) -> str:
    """``Name: message`` of an exception; for a papermill error, the notebook's own exception."""
    if getattr(exc, "ename", None):
        return f"{exc.ename}: {exc.evalue}"
    return f"{type(exc).__name__}: {exc}"


CELL_TIMEOUT_ENV = "FER_CELL_TIMEOUT"


def execute(stem: str, params: dict[str, Any], out_dir: Path) -> Path:
    """Run one notebook with papermill into ``out_dir`` (cell output streams to the log).

    A cell that runs longer than $FER_CELL_TIMEOUT seconds (default: none, as a cell may train a run)
    fails the notebook instead of hanging the build.
    """
    import papermill as pm

    out = out_dir / f"{stem}.ipynb"
    source = NOTEBOOK_DIR / f"{stem}.ipynb"
    if "interactive" in pm.inspect_notebook(str(source)):
        # No live widgets in a build: a page without a kernel cannot use them, and nbclient intermittently
        # never returns from a cell that creates them (jupyter/nbclient#312; about one build in two here).
        params = {**params, "interactive": False}
    timeout = int(os.environ[CELL_TIMEOUT_ENV]) if os.environ.get(CELL_TIMEOUT_ENV) else None
    pm.execute_notebook(str(source), str(out), parameters=params, kernel_name="python3",
                        log_output=True, progress_bar=False, cwd=str(PROJECT_ROOT), execution_timeout=timeout,
                        start_timeout=120)
    return out


def build(profile: str = "smoke", datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
          device: str | None = None, out_dir: str | os.PathLike | None = None, force: bool = False,
          notebooks: Sequence[str] | None = None, pretrain: bool = True, say: Callable[[str], None] = print) -> Path:
    """The whole report: train what is missing, execute every notebook, render the pages. Returns index.html.

    A failing notebook stops the build; the pages before it stay, and the index marks it failed.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    out = Path(out_dir) if out_dir else REPORT_DIR / profile
    aside = prepare_output(out, force)
    if aside is not None:
        say(f"[report] previous report moved to {aside}")
    datasets = list(datasets) if datasets else default_datasets(profile)
    seeds = list(seeds) if seeds else list(SCOPES[profile].seeds)
    statuses = dataset_statuses(profile, datasets)
    for s in statuses:
        say(f"[report] {s.label}: {'run' if s.run else 'not run'}{' — ' + s.why if s.why else ''}")
    started = time.time()
    meta = {"profile": profile, "datasets requested": " ".join(datasets), "seeds": " ".join(map(str, seeds)),
            "started (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "machine": machine(),
            "command": f"run_all.sh --profile {profile} --datasets {' '.join(datasets)}", "scope": SCOPES[profile].note or "as in the paper"}
    if os.environ.get(NO_TRAIN_ENV):
        meta["command"] += " --no-train"
        say("[report] --no-train: only runs already recorded are shown; the others say 'not trained yet'")
    elif pretrain:
        cfgs = planned_configs(profile, datasets, seeds)
        say(f"[report] {len(cfgs)} runs needed")
        train_missing(cfgs, device=device, say=say)
    params = {"profile": profile, "datasets": datasets, "seeds": seeds, "device": device or "", "output_dir": str(out.resolve())}
    pages: dict[str, str] = {}
    chosen = [s for s, _ in NOTEBOOKS if not notebooks or s in notebooks]
    try:
        for k, stem in enumerate(chosen, start=1):
            say(f"[report] notebook {k}/{len(chosen)} {stem}: executing")
            t0 = time.time()
            try:
                executed = execute(stem, params, out)
            except Exception as exc:
                pages[stem] = f"failed: {error_line(exc)}"
                if (out / f"{stem}.ipynb").exists():
                    render_notebook(out / f"{stem}.ipynb", out / f"{stem}.html")  # the page shows the traceback
                say(f"[report] FAILED {stem}: {error_line(exc)}")
                raise NotebookFailed(stem, error_line(exc)) from exc
            render_notebook(executed, out / f"{stem}.html")
            pages[stem] = "ok"
            say(f"[report] notebook {k}/{len(chosen)} {stem}: done in {time.time() - t0:.0f} s -> {out / (stem + '.html')}")
    finally:
        meta["duration"] = f"{time.time() - started:.0f} s"
        render_notes(out, profile)
        index = render_index(out, profile, pages, meta)
        (out / "build.json").write_text(json.dumps({**meta, "pages": pages}, indent=1) + "\n")
        summary_file = out / "01_table3_accuracy.json"
        if summary_file.exists():
            (out / "summary.md").write_text(summary_markdown(json.loads(summary_file.read_text())["index"]))
    say(f"[report] done in {time.time() - started:.0f} s: {index}")
    return index


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fer_lib.report [--profile P] [--datasets ...] [--seeds ...] [--force]``."""
    parser = argparse.ArgumentParser(prog="python -m fer_lib.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke", choices=PROFILES)
    parser.add_argument("--datasets", nargs="+", default=None, help="default: synthetic on smoke, the paper's five otherwise")
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: the engine's choice)")
    parser.add_argument("--out", default=None, help="default results/report/<profile>")
    parser.add_argument("--force", action="store_true", help="move an existing report aside instead of refusing")
    parser.add_argument("--notebooks", nargs="+", default=None, help="only these notebook stems")
    parser.add_argument("--plan", action="store_true", help="list the runs needed (and which are cached), train nothing")
    parser.add_argument("--no-train", action="store_true", help="render from the runs already recorded; train nothing")
    args = parser.parse_args(argv)
    if args.no_train:
        os.environ[NO_TRAIN_ENV] = "1"  # the notebooks' kernels inherit it
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("papermill").setLevel(logging.INFO)
    if args.plan:
        from fer_lib.engine import get_run

        cfgs = planned_configs(args.profile, args.datasets, args.seeds)
        for s in dataset_statuses(args.profile, args.datasets):
            print(f"{s.label}: {'run' if s.run else 'not run'}{' — ' + s.why if s.why else ''}")
        for cfg in cfgs:
            why = _untrainable_reason(cfg)
            state = f"not run ({why})" if why else ("cached" if get_run(cfg, train=False) else "to train")
            over = f" overrides={cfg.overrides}" if cfg.overrides else ""
            print(f"{cfg.id}  {state}  {cfg.model} {cfg.model_options} {cfg.loss_options} recipe={cfg.recipe} seed={cfg.seed}{over}")
        print(f"{len(cfgs)} runs")
        return 0
    try:
        build(args.profile, args.datasets, args.seeds, args.device, args.out, args.force, args.notebooks)
    except FileExistsError as exc:
        print(f"[report] {exc}", file=sys.stderr)
        return 2
    except NotebookFailed as exc:
        print(f"[report] stopped: notebook {exc.stem} failed: {exc.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
