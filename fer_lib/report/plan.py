"""The report plan: which datasets run, and every run each table and figure needs, made once per build.

:func:`make_plan` resolves a profile, datasets and seeds into a :class:`ReportPlan`: one
:class:`DatasetStatus` per dataset, the figure dataset, and named run groups ("table3",
"table4", "table5", "figures", "theta"), each a mapping from a table key to the configs over
seeds. The build trains every planned run, then writes the plan as ``plan.json`` beside the
pages; each notebook reads it back (:mod:`fer_lib.report.page`), so the two never disagree.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from fer_lib import PROJECT_ROOT, RESULTS_DIR, paper
from fer_lib.data import DATA_ENV, available_datasets, data_root, dataset_info
from fer_lib.engine import PROFILES as ENGINE_PROFILES
from fer_lib.engine import RunConfig
from fer_lib.engine.recipes import PAPER_EPOCHS, PAPER_IMAGE_SIZE

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
REPORT_DIR = RESULTS_DIR / "report"
PLAN_FILE = "plan.json"

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
    ("12_training_curves", "Training curves: loss parts, accuracy, learning rate and loss-term gradients"),
)
# Pages that time code: executed alone, after the others, with every core (fer_lib.report.parallel).
TIMED_NOTEBOOKS = ("08_fig9_efficiency",)
PROFILES = tuple(ENGINE_PROFILES)
SYNTHETIC = "synthetic"
PAPER_DATASETS = tuple(paper.DATASETS)
# Figures 5-7 and 8 use RAF-DB in the paper; without it, the first of these that was run.
FIGURE_PREFERENCE = ("rafdb", "ferplus", "fer2013", "affectnet7", "affectnet8")
GROUPS = ("table3", "table4", "table5", "figures", "theta")


# ---------------------------------------------------------------- scopes


@dataclass(frozen=True)
class Scope:
    """How much of each sweep a profile runs (the smoke profile keeps them tiny, and says so)."""

    seeds: tuple[int, ...]
    heads: tuple[int, ...]
    thetas: tuple[float, ...]
    readings: bool  # also train the alternative readings (gated loss weighting, AFC concat)
    sweep_overrides: dict[str, Any] = field(default_factory=dict)  # recipe overrides of Table 5, Fig. 8 and the readings
    ablation_overrides: dict[str, Any] = field(default_factory=dict)  # recipe overrides of Table 4 (its full-model row included)
    baseline_overrides: dict[str, Any] = field(default_factory=dict)  # recipe overrides of DAN and DDAMFN
    sweep_seeds: tuple[int, ...] | None = None  # seeds of Table 5, Fig. 8 and the readings (None: ``seeds``)
    reading: dict[str, Any] = field(default_factory=dict)  # model options of every DAF-MHSCA run with heads ({}: as printed)
    reading_why: str = ""  # why the scope reads a passage other than as printed (shown on every page)


CHANNEL_SUM_WHY = ("each head's map is read as one sigmoid map per head (head_gate=channel_sum, DAN's form): "
                   "read elementwise, as Eq. 9 prints it, DAF-MHSCA stalls near 30 % on FER2013 at the cpu budget "
                   "(docs/cpu_study.md)")
DEMO_SMALL = {"epochs": 2, "train_subset": 350}  # the demo build's rows beyond Table 3: seconds each

SCOPES: dict[str, Scope] = {
    "smoke": Scope(seeds=(0,), heads=(1, 4), thetas=(0.3, 1.0), readings=False),
    # DAF-MHSCA and its control at the demo profile's budget; the other rows a pipeline check. It reads
    # the head map as the cpu study does (CHANNEL_SUM_WHY), so the trained model is the one studied there.
    "demo": Scope(seeds=(0,), heads=(1, 4), thetas=(0.3, 1.0), readings=False,
                  **{f"{group}_overrides": DEMO_SMALL for group in ("ablation", "sweep", "baseline")},
                  reading={"head_gate": "channel_sum"}, reading_why=CHANNEL_SUM_WHY),
    # 2 cores, every run at the profile's full budget: Table 3, the control and Table 4 with 3 seeds;
    # the sweeps and readings with one (scripts/cpu_study.py trains them in that order). Its DAF-MHSCA reads
    # the head map channel-sum (CHANNEL_SUM_WHY); the elementwise row is a reading.
    "cpu": Scope(seeds=(0, 1, 2), heads=tuple(paper.TABLE5), thetas=(0.1, 0.3, 0.6, 1.0), readings=True, sweep_seeds=(0,),
                 reading={"head_gate": "channel_sum"}, reading_why=CHANNEL_SUM_WHY + "; the elementwise reading is a row "
                                                                                      "of the readings table"),
    "paper": Scope(seeds=(0, 1, 2), heads=tuple(paper.TABLE5), thetas=paper.FIG8_THETAS, readings=True),
}


def _listed(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def scope_note(profile: str) -> str:
    """What the profile's scope leaves out of the paper's sweeps, from the :class:`Scope` fields ("" if nothing)."""
    scope = SCOPES[profile]
    parts = [f"DAF-MHSCA: {scope.reading_why}"] if scope.reading else []
    if scope.sweep_seeds is not None:
        parts.append(f"Table 3, its ResNet18 control and Table 4 with seeds {_listed(scope.seeds)}; Table 5, Figure 8 "
                     f"and the readings with seed {_listed(scope.sweep_seeds)}")
    if tuple(scope.heads) != tuple(paper.TABLE5):
        parts.append(f"N_h in {{{_listed(scope.heads)}}} only (paper: {_listed(paper.TABLE5)})")
    if tuple(scope.thetas) != tuple(paper.FIG8_THETAS):
        parts.append(f"theta in {{{_listed(scope.thetas)}}} only (paper: {_listed(paper.FIG8_THETAS)})")
    if not scope.readings:
        parts.append("alternative readings not trained")
    for what, over in (("Table 4 (its full-model row included)", scope.ablation_overrides),
                       ("Table 5, Figure 8 and the readings", scope.sweep_overrides),
                       ("DAN and DDAMFN", scope.baseline_overrides)):
        if over:
            parts.append(f"{what} at a smaller budget ({_overrides(over)}), not comparable with Table 3's runs")
    return "; ".join(parts)


def _overrides(over: dict[str, Any]) -> str:
    names = {"train_subset": "training faces", "epochs": "epochs"}
    return ", ".join(f"{value} {names[key]}" if key in names else f"{key} {value}" for key, value in over.items())


def banner(profile: str) -> str:
    """The warning every page opens with (markdown), from the engine's :class:`~fer_lib.engine.recipes.Profile`."""
    prof = ENGINE_PROFILES[profile]
    text = f"{prof.describe()}."
    if prof.synthetic:
        return (f"**{profile.upper()} PROFILE — built-in SYNTHETIC data.** {text} Its numbers are NOT comparable "
                "to the paper's and say nothing about DAF-MHSCA.")
    scaled = prof.image_size != PAPER_IMAGE_SIZE or prof.epochs not in (None, PAPER_EPOCHS) or prof.train_subset is not None
    return (f"**{profile.upper()} PROFILE** — {text} The ResNet18 trunk starts from random weights: the paper's "
            "MS-Celeb-1M checkpoint is not available here." + (" Expect lower numbers than the paper." if scaled else ""))


# ---------------------------------------------------------------- datasets


class UnknownDataset(ValueError):
    """A requested dataset that no loader module registers."""


@dataclass(frozen=True)
class DatasetStatus:
    """One row of the report: a dataset, whether it is run under this profile, and why not."""

    name: str
    run: bool
    why: str = ""

    @property
    def label(self) -> str:
        info = dataset_info(self.name)
        return info.label if info else self.name


def missing_data(name: str, root: str | os.PathLike | None = None) -> str | None:
    """None if ``name``'s files are under the data root, else why not (e.g. "RAF-DB not found under ...")."""
    info = dataset_info(name)
    if info is None or info.find is None:
        return None
    base = data_root(root)
    where = f"${DATA_ENV}={base}" if os.environ.get(DATA_ENV) else str(base)
    try:
        info.find(root)
    except (OSError, ValueError) as exc:  # DatasetError is a ValueError
        return f"{info.label} not found under {where} ({str(exc).splitlines()[0].split(';')[0]})"
    return None


def default_datasets(profile: str) -> list[str]:
    """A synthetic profile (demo, smoke) runs the built-in faces; the others the paper's five (those present)."""
    return [SYNTHETIC] if ENGINE_PROFILES[profile].synthetic else list(PAPER_DATASETS)


def check_datasets(datasets: Sequence[str]) -> None:
    """Raise :class:`UnknownDataset` naming the first unknown name and the known ones."""
    known = available_datasets()
    for name in datasets:
        if name not in known:
            raise UnknownDataset(f"unknown dataset {name!r}; known: {', '.join(known)}")


def dataset_statuses(profile: str, datasets: Sequence[str] | None = None, root: str | os.PathLike | None = None) -> list[DatasetStatus]:
    """One status per paper dataset, then one per other requested dataset (e.g. synthetic), in order."""
    requested = list(datasets) if datasets else default_datasets(profile)
    synthetic = ENGINE_PROFILES[profile].synthetic
    out = []
    for name in PAPER_DATASETS:
        if name not in requested:
            why = (f"the {profile} profile trains on the built-in synthetic data only (use --profile cpu or paper)"
                   if synthetic else f"not requested (--datasets {' '.join(requested)})")
            out.append(DatasetStatus(name, False, why))
        elif synthetic:
            out.append(DatasetStatus(name, True, f"{profile} profile: a synthetic stand-in, not the real data"))
        else:
            why = missing_data(name, root)
            out.append(DatasetStatus(name, why is None, why or ""))
    for name in requested:
        if name not in PAPER_DATASETS:
            why = missing_data(name, root) if not synthetic else None
            info = dataset_info(name)
            note = "procedural faces, not comparable to the paper" if info and info.synthetic else "not one of the paper's datasets"
            out.append(DatasetStatus(name, why is None, why or note))
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
    info = dataset_info(pick)
    label = (f"the {info.label}" if info.synthetic else info.label) if info else pick
    return pick, f"the paper draws this on RAF-DB, which is not run here ({why}); shown on {label} instead"


# ---------------------------------------------------------------- runs of each table and figure


def recipe_for(dataset: str, profile: str) -> str:
    """Recipe of the sweeps: the profile's own where it is not Table 2 (cpu: scratch); else Table 2 as
    printed, except RAF-DB, whose printed lr 0.1 with Adam fails."""
    if ENGINE_PROFILES[profile].recipe != "paper":
        return ENGINE_PROFILES[profile].recipe
    return "ours" if dataset == "rafdb" else "paper"  # Table 3 shows RAF-DB under both recipes


def config(dataset: str, profile: str, seed: int, model: str = "daf_mhsca", recipe: str | None = None,
           model_options: dict[str, Any] | None = None, loss_options: dict[str, Any] | None = None,
           overrides: dict[str, Any] | None = None) -> RunConfig:
    """A :class:`RunConfig` of the report; a DAF-MHSCA run with heads takes the scope's ``reading`` under its own options."""
    options = dict(model_options or {})
    if model == "daf_mhsca" and options.get("use_mhsca", True):
        options = {**SCOPES[profile].reading, **options}
    return RunConfig(dataset=dataset, model=model, model_options=options, loss_options=dict(loss_options or {}),
                     recipe=recipe or recipe_for(dataset, profile), profile=profile, seed=int(seed), overrides=dict(overrides or {}))


def _figure_pick(datasets: Sequence[str]) -> str | None:
    return next((d for d in FIGURE_PREFERENCE if d in datasets), datasets[0] if datasets else None)


def table3_configs(profile: str, datasets: Sequence[str], seeds: Sequence[int]) -> dict[tuple[str, str, str], list[RunConfig]]:
    """(method, dataset, recipe) -> configs over seeds: DAF-MHSCA and its ResNet18 control on every dataset
    (RAF-DB under both recipes), DAN and DDAMFN on the figure dataset (Fig. 5-7 need them)."""
    out: dict[tuple[str, str, str], list[RunConfig]] = {}
    for ds in datasets:
        recipes = ("paper", "ours") if ds == "rafdb" and recipe_for(ds, profile) == "ours" else (recipe_for(ds, profile),)
        for recipe in recipes:
            out[(paper.OURS, ds, recipe)] = [config(ds, profile, s, recipe=recipe) for s in seeds]
        out[(paper.CONTROL, ds, recipe_for(ds, profile))] = [config(ds, profile, s, model_options=paper.CONTROL_OPTIONS) for s in seeds]
    fig_ds = _figure_pick(datasets)
    if fig_ds is not None:
        for method in ("DAN", "DDAMFN"):
            out[(method, fig_ds, recipe_for(fig_ds, profile))] = [baseline_config(method, fig_ds, profile, s) for s in seeds]
    return out


def baseline_config(method: str, dataset: str, profile: str, seed: int) -> RunConfig:
    """The run of a compared method (DAN, DDAMFN; DAF-MHSCA is the Table 3 run)."""
    if method == paper.OURS:
        return config(dataset, profile, seed)
    cfg = config(dataset, profile, seed, model=paper.MODEL_OF_METHOD[method], overrides=SCOPES[profile].baseline_overrides)
    if profile == "paper" and paper.NATIVE_IMAGE_SIZE[method] != cfg.plan.image_size:
        # Under the paper profile each baseline runs at its own paper's size; smoke and cpu share one size.
        cfg = replace(cfg, image_size=paper.NATIVE_IMAGE_SIZE[method])
    return cfg


READINGS: dict[str, dict[str, dict[str, Any]]] = {
    # The paper names a "gradient gating mechanism" without a rule (Sec. 2.5.4): our rule as a switch.
    "gated loss weighting": {"loss_options": {"weighting": "gated"}},
    # Eq. 1 / Alg. 1 sum the dilated branches; the prose says concatenate.
    "AFC concat": {"model_options": {"afc_fusion": "concat"}},
    # Eq. 9's head map as DAN's one sigmoid map per head: the reading under which L_mhv has a real gradient (docs/model.md).
    "head map channel-sum": {"model_options": {"head_gate": "channel_sum"}},
    # Eq. 9 as printed: a sigmoid gate per channel and position (the row of a scope whose runs read channel-sum).
    "head map elementwise (Eq. 9 as printed)": {"model_options": {"head_gate": "elementwise"}},
    # Eq. 7's concat along channels, one x_Ca in both terms of Eq. 8 as printed; ours stacks the tokens (docs/model.md).
    "DAF channel concat (Eq. 8 as printed)": {"model_options": {"daf_concat": "channels"}},
    # Eq. 7 as printed, softmax(Q_Hc K_Hc^T) V_Wc: one direction's queries and keys, the other's values (square maps).
    "DAF literal cross (Eq. 7 as printed)": {"model_options": {"daf_cross": "literal"}},
}
DEFAULT_READING = "the model of the other tables"


def readings_of(profile: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The rows of :data:`READINGS` a profile trains: each passage read the other way than its DAF-MHSCA runs read it."""
    gate = SCOPES[profile].reading.get("head_gate", "elementwise")
    return {row: opts for row, opts in READINGS.items() if opts.get("model_options", {}).get("head_gate", "") != gate}


def without_reading(profile: str, model_options: dict[str, Any]) -> dict[str, Any]:
    """``model_options`` less the scope's reading: what makes a run's row (e.g. the ablation it is)."""
    reading = SCOPES[profile].reading
    return {k: v for k, v in model_options.items() if reading.get(k, object()) != v}


def sweep_seeds(profile: str, seeds: Sequence[int]) -> list[int]:
    """Seeds of Table 5, Figure 8 and the readings: the scope's ``sweep_seeds`` among ``seeds`` (else ``seeds``)."""
    chosen = SCOPES[profile].sweep_seeds
    return [s for s in seeds if s in chosen] or list(seeds[:1]) if chosen else list(seeds)


def table4_configs(profile: str, datasets: Sequence[str], seeds: Sequence[int], readings: bool = False) -> dict[tuple[str, str], list[RunConfig]]:
    """(row, dataset) -> configs over seeds: the ablations of Table 4, plus, with ``readings``, the
    alternative readings and the default model at the scope's sweep size on the figure dataset."""
    ablate = SCOPES[profile].ablation_overrides
    out = {(row, ds): [config(ds, profile, s, model_options=opts, overrides=ablate) for s in seeds]
           for ds in datasets for row, opts in paper.ABLATION_OPTIONS.items()}
    if readings and datasets:
        ds = _figure_pick(datasets)
        over = SCOPES[profile].sweep_overrides
        sweep = sweep_seeds(profile, seeds)
        out[(DEFAULT_READING, ds)] = [config(ds, profile, s, overrides=over) for s in sweep]
        for row, opts in readings_of(profile).items():
            out[(row, ds)] = [config(ds, profile, s, overrides=over, **opts) for s in sweep]
    return out


def table5_datasets(datasets: Sequence[str]) -> list[str]:
    """Table 5 has no FER2013 column: the datasets it covers among those run."""
    return [d for d in datasets if d in paper.TABLE5_DATASETS or d not in paper.DATASETS]


def table5_configs(profile: str, datasets: Sequence[str], seeds: Sequence[int], heads: Sequence[int]) -> dict[tuple[int, str], list[RunConfig]]:
    """(N_h, dataset) -> configs over seeds."""
    over = SCOPES[profile].sweep_overrides
    return {(h, ds): [config(ds, profile, s, model_options={} if h == 4 else {"num_heads": h}, overrides=over)
                      for s in sweep_seeds(profile, seeds)]
            for ds in table5_datasets(datasets) for h in heads}


def figure_configs(profile: str, dataset: str, seed: int) -> dict[str, RunConfig]:
    """Figures 5-7: method -> the config of DAN, DDAMFN and DAF-MHSCA on one dataset and seed."""
    return {m: baseline_config(m, dataset, profile, seed) for m in paper.FIGURE_METHODS}


def theta_configs(profile: str, dataset: str, seeds: Sequence[int], thetas: Sequence[float]) -> dict[float, list[RunConfig]]:
    """Figure 8: theta -> configs over seeds (theta 0.3 is the default model, at the scope's sweep size)."""
    over = SCOPES[profile].sweep_overrides
    return {t: [config(dataset, profile, s, loss_options={} if math.isclose(t, 0.3) else {"theta": float(t)}, overrides=over)
                for s in sweep_seeds(profile, seeds)] for t in thetas}


# ---------------------------------------------------------------- the plan


@dataclass
class ReportPlan:
    """Everything a build decides before training: datasets and why, the figure dataset, the run groups.

    ``skipped`` maps the id of a planned run that cannot be trained to why (filled in by the build);
    ``no_train`` says the build trained nothing, so a run without a record is "not trained yet".
    """

    profile: str
    datasets: list[str]
    seeds: list[int]
    statuses: list[DatasetStatus]
    figure: str | None
    figure_why: str
    groups: dict[str, dict[Any, list[RunConfig]]]
    no_train: bool = False
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def scope(self) -> Scope:
        return SCOPES[self.profile]

    @property
    def ran(self) -> list[str]:
        return run_datasets(self.statuses)

    def status(self, name: str) -> DatasetStatus | None:
        return next((s for s in self.statuses if s.name == name), None)

    def configs(self, groups: Sequence[str] = GROUPS) -> list[RunConfig]:
        """The runs of ``groups`` without duplicates, in the order the notebooks use them."""
        seen: dict[str, RunConfig] = {}
        for name in groups:
            for cfgs in self.groups.get(name, {}).values():
                for cfg in cfgs:
                    seen.setdefault(cfg.id, cfg)
        return list(seen.values())

    def to_json(self) -> str:
        groups = {name: [{"key": list(k) if isinstance(k, tuple) else k, "runs": [c.to_dict() for c in cfgs]}
                         for k, cfgs in group.items()] for name, group in self.groups.items()}
        return json.dumps({"profile": self.profile, "datasets": self.datasets, "seeds": self.seeds,
                           "statuses": [vars(s) for s in self.statuses], "figure": self.figure, "figure_why": self.figure_why,
                           "groups": groups, "no_train": self.no_train, "skipped": self.skipped}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ReportPlan:
        d = json.loads(text)
        groups = {name: {tuple(e["key"]) if isinstance(e["key"], list) else e["key"]: [RunConfig.from_dict(c) for c in e["runs"]]
                         for e in entries} for name, entries in d["groups"].items()}
        return cls(d["profile"], d["datasets"], d["seeds"], [DatasetStatus(**s) for s in d["statuses"]], d["figure"],
                   d["figure_why"], groups, d["no_train"], d["skipped"])

    def save(self, out_dir: str | os.PathLike) -> Path:
        path = Path(out_dir) / PLAN_FILE
        path.write_text(self.to_json())
        return path


def make_plan(profile: str, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
              no_train: bool = False, root: str | os.PathLike | None = None) -> ReportPlan:
    """The report plan of a profile (raises ValueError for an unknown profile, UnknownDataset for an unknown dataset)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    datasets = list(datasets) if datasets else default_datasets(profile)
    check_datasets(datasets)
    scope = SCOPES[profile]
    seeds = [int(s) for s in seeds] if seeds else list(scope.seeds)
    statuses = dataset_statuses(profile, datasets, root)
    ran = run_datasets(statuses)
    fig_ds, why = figure_dataset(statuses)
    groups: dict[str, dict[Any, list[RunConfig]]] = {
        "table3": table3_configs(profile, ran, seeds),
        "table4": table4_configs(profile, ran, seeds, scope.readings),
        "table5": table5_configs(profile, ran, seeds, scope.heads),
        "figures": {m: [c] for m, c in figure_configs(profile, fig_ds, seeds[0]).items()} if fig_ds else {},
        "theta": {(t, fig_ds): cfgs for t, cfgs in theta_configs(profile, fig_ds, seeds, scope.thetas).items()} if fig_ds else {},
    }
    return ReportPlan(profile, datasets, seeds, statuses, fig_ds, why, groups, no_train)


def planned_configs(profile: str, datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None) -> list[RunConfig]:
    """Every run the report needs, without duplicates, in the order the notebooks use them."""
    return make_plan(profile, datasets, seeds).configs()
