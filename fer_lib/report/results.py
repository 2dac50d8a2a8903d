"""What the report reads back: the record of each planned run (never trained here), its cells and its model.

:func:`fetch` turns configs into :class:`Outcome` s (a record, or why there is none); :func:`cell`
turns the outcomes of one config over seeds into a table :class:`Cell`; :func:`load_runs` gives the
explainer notebooks a model per method. Training happens in the build only
(:mod:`fer_lib.report.build`): a planned run without a record here is an error naming its id,
unless the build ran with ``--no-train``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from torch import nn

from fer_lib import paper
from fer_lib.data import DatasetError, FaceData
from fer_lib.data.synthetic import pixel_linear_accuracy
from fer_lib.engine import ConfigError, RunConfig, evidence, get_run, load_model
from fer_lib.engine.inputs import load_data
from fer_lib.models import InputSpec, available_models, build_model
from fer_lib.report.plan import ReportPlan, baseline_config, config

NOT_TRAINED = "not trained yet (report built with --no-train)"


class MissingRun(RuntimeError):
    """A planned run has no record although the build trained every planned run before the notebooks."""

    def __init__(self, run_id: str):
        super().__init__(f"run {run_id} has no record: the build trains every planned run before executing the notebooks; "
                         f"build the report again (python -m fer_lib.report), or with --no-train to show it as not trained")
        self.run_id = run_id


@dataclass
class Outcome:
    """A run that the report asked for: its record, or why there is none."""

    config: Any
    record: Any = None
    why: str = ""


def fetch(cfgs: Iterable[RunConfig], no_train: bool = False, skipped: Mapping[str, str] | None = None) -> list[Outcome]:
    """The record of each config, never training: a config the engine rejects, or data it cannot read,
    gives a reason; so does a run the build ``skipped``. A run without a record raises :class:`MissingRun`,
    unless ``no_train`` (then it is "not trained yet")."""
    skipped = skipped or {}
    out = []
    for cfg in cfgs:
        if cfg.id in skipped:
            out.append(Outcome(cfg, None, skipped[cfg.id]))
            continue
        try:
            rec = get_run(cfg, train=False)
        except (ConfigError, DatasetError, FileNotFoundError) as exc:
            out.append(Outcome(cfg, None, f"{type(exc).__name__}: {exc}"))
            continue
        if rec is None and not no_train:
            raise MissingRun(cfg.id)
        out.append(Outcome(cfg, rec, "" if rec is not None else NOT_TRAINED))
    return out


def records(outcomes: Iterable[Outcome]) -> list[Any]:
    return [o.record for o in outcomes if o.record is not None]


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


DOMINANT_SHARE = 0.8  # a model whose most predicted class takes more than this share of the test faces is flagged


@dataclass(frozen=True)
class Reference:
    """What a model gets without looking at a face, on one test split: chance (1/K) and the majority class (percent)."""

    classes: int
    chance: float
    majority: str
    majority_share: float


def reference(counts: Sequence[int], classes: Sequence[str]) -> Reference:
    """Chance (100 / K) and the majority class with its share (%) of a split with ``counts`` faces per class."""
    total = sum(counts)
    if len(counts) != len(classes) or not classes or total <= 0:
        raise ValueError(f"need one positive count per class, not {list(counts)} for {list(classes)}")
    top = max(range(len(counts)), key=lambda k: counts[k])
    return Reference(len(classes), 100.0 / len(classes), str(classes[top]), 100.0 * counts[top] / total)


def _test_confusion(record: Any, selection: str | None = None) -> list[list[int]] | None:
    """The test confusion matrix (rows true, columns predicted, K x K) of a run at a selected epoch, or None."""
    block = record.metrics.get(selection or primary_selection(record)) or {}
    confusion = (block.get("test") or {}).get("confusion")
    k = len(record.classes)
    if not confusion or len(confusion) != k or any(len(row) != k for row in confusion):
        return None
    return confusion if sum(map(sum, confusion)) > 0 else None


def split_reference(record: Any, selection: str | None = None) -> Reference | None:
    """Chance and majority class of a run's test split (from its test confusion matrix), or None without one."""
    confusion = _test_confusion(record, selection)
    if confusion is None:
        return None
    return reference([sum(row) for row in confusion], record.classes)


def dominant_prediction(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> tuple[str, float]:
    """The most predicted class of a confusion matrix (rows true, columns predicted) and its share (%) of the faces."""
    predicted = [sum(row[k] for row in confusion) for k in range(len(classes))]
    top = max(range(len(predicted)), key=lambda k: predicted[k])
    return str(classes[top]), 100.0 * predicted[top] / max(sum(predicted), 1)


def one_class_flag(record: Any, selection: str | None = None, share: float = DOMINANT_SHARE) -> str:
    """"predicts only <class> (NN % of faces)" where one predicted class takes more than ``share`` of the test faces; else ""."""
    confusion = _test_confusion(record, selection)
    if confusion is None:
        return ""
    name, pct = dominant_prediction(confusion, record.classes)
    return f"predicts only {name} ({pct:.0f} % of faces)" if pct > 100.0 * share else ""


@dataclass
class Cell:
    """One table cell: accuracy (%) over seeds (:func:`evidence.seed_summary`), its test split's chance and
    majority class, a one-class flag per seed, or why it is empty."""

    values: list[float] = field(default_factory=list)
    why: str = ""
    synthetic: bool = False
    planned: int = 0  # seeds asked for (0: as many as values)
    flags: dict[int, str] = field(default_factory=dict)  # seed -> "predicts only ..." (degenerate runs only)
    reference: Reference | None = None
    precisions: dict[int, str] = field(default_factory=dict)  # seed -> the precision it trained in (env.json)

    @property
    def summary(self) -> evidence.Summary | None:
        return evidence.seed_summary(self.values) if self.values else None

    @property
    def mean(self) -> float | None:
        return self.summary.mean if self.values else None

    @property
    def std(self) -> float:
        """Sample std over seeds; 0.0 for one seed (:attr:`summary` has None there)."""
        s = self.summary
        return s.std if s is not None and s.std is not None else 0.0

    def spread(self) -> str:
        """"mean ± std" (just the mean for one seed); "" when empty."""
        s = self.summary
        if s is None:
            return ""
        return f"{s.mean:.2f}" + (f" ± {s.std:.2f}" if s.std is not None else "")

    def interval(self) -> str:
        """"[low, high]" (95 %, t over seeds), or "N seed(s), no interval"; "" when empty."""
        s = self.summary
        if s is None:
            return ""
        if s.ci_low is None:
            return f"{s.n} seed{'s' if s.n > 1 else ''}, no interval"
        return f"[{s.ci_low:.2f}, {s.ci_high:.2f}]"

    def n_seeds(self) -> str:
        """"3", or "2 of 3" where some planned seeds have no result."""
        n = len(self.values)
        return f"{n} of {self.planned}" if self.planned > n else str(n)

    @property
    def flag(self) -> str:
        """The one-class flag: one run's as is; with several seeds, each flagged seed named."""
        if not self.flags:
            return ""
        if len(self.values) == 1:
            return next(iter(self.flags.values()))
        return "; ".join(f"seed {seed} {text}" for seed, text in sorted(self.flags.items()))

    @property
    def mixed_precision(self) -> str:
        """"seeds in bf16: 0; fp32: 1, 2" where the seeds trained in different precisions (``precision=auto``
        resolves per machine), so the mean mixes them; "" otherwise."""
        by: dict[str, list[int]] = {}
        for seed, precision in sorted(self.precisions.items()):
            by.setdefault(precision, []).append(seed)
        if len(by) < 2:
            return ""
        return "seeds in " + "; ".join(f"{p}: {', '.join(map(str, seeds))}" for p, seeds in sorted(by.items()))

    def _notes(self) -> str:
        return "".join(f" — {n}" for n in (self.flag, self.mixed_precision) if n) + (" [synthetic]" if self.synthetic and self.values else "")

    def status(self) -> str:
        """"" with a number; else "not trained yet" (a --no-train build) or "not run" (a short label for a figure)."""
        return "" if self.values else ("not trained yet" if self.why.startswith("not trained yet") else "not run")

    def number(self) -> str:
        """:meth:`spread` with the flag beside it: the cell of a "mean ± std" column."""
        return self.spread() + self._notes()

    def text(self) -> str:
        """Everything in one cell: mean ± std, interval and seeds, the flag; or why there is no number."""
        if not self.values:
            return f"not run: {self.why}" if self.why else "not run"
        said = f"95 % interval {self.interval()}, {self.n_seeds()} seeds" if self.summary.ci_low is not None else self.interval()
        if self.planned > len(self.values) and self.summary.ci_low is None:
            said += f"; {self.n_seeds()} planned seeds"
        return f"{self.spread()} ({said})" + self._notes()


def cell(outcomes: Sequence[Outcome], selection: str | None = None) -> Cell:
    """A table cell from the outcomes of one config over seeds."""
    c = Cell(planned=len(outcomes))
    for o in outcomes:
        if o.record is None:
            c.why = c.why or o.why
            continue
        sel = selection or primary_selection(o.record)
        acc = accuracy(o.record, sel)
        if acc is None:
            c.why = c.why or f"no {selection or 'selected'} epoch"
            continue
        c.values.append(acc)
        c.synthetic = c.synthetic or bool(o.record.data.get("synthetic"))
        c.reference = c.reference or split_reference(o.record, sel)
        if flag := one_class_flag(o.record, sel):
            c.flags[int(o.record.config.seed)] = flag
        if precision := (o.record.env or {}).get("precision"):
            c.precisions[int(o.record.config.seed)] = str(precision)
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


def data_facts(record: Any) -> dict[str, Any]:
    """What a run's data held: split sizes, class names, whether synthetic (for the notes).

    On the built-in faces also ``pixel_linear``: a logistic regression on the same faces' pixels (test
    accuracy, 0-1), the floor that shows how hard they are."""
    keep = ("name", "n_train", "n_train_used", "n_val", "n_test", "classes", "synthetic", "loader")
    facts = {k: record.data.get(k) for k in keep if k in record.data}
    if facts.get("synthetic"):
        facts["pixel_linear"] = pixel_linear_accuracy(load_run_data(record))
    return facts


def mean_gates(recs: Sequence[Any]) -> dict[str, float]:
    """Mean over epochs and seeds of the loss gates a run logged (``loss_gate_*``; empty with fixed weights)."""
    values: dict[str, list[float]] = {}
    for r in recs:
        for row in r.history:
            for k, v in row.items():
                if k.startswith("loss_gate_") and isinstance(v, (int, float)):
                    values.setdefault(k[len("loss_gate_"):], []).append(float(v))
    return {k: sum(v) / len(v) for k, v in values.items()}


# ---------------------------------------------------------------- models and data of runs


def load_run_data(record: Any) -> FaceData:
    """The FaceData a run was trained on (same loader and options as the engine)."""
    data, _ = load_data(record.plan["dataset"], **record.plan.get("data_options", {}))
    return data


def model_of(record: Any, device: str | None = None) -> tuple[nn.Module, InputSpec]:
    """``load_model`` of a run (FileNotFoundError when its checkpoint is missing: the build rebuilds
    the checkpoints of the figure runs, unless ``--no-train``)."""
    return load_model(record, device=device or "cpu")


@dataclass
class LoadedRun:
    """A model for the notebooks: trained (``record`` set), untrained (``untrained``) or absent (``model`` None, ``note`` says why)."""

    label: str
    model_name: str
    model: nn.Module | None
    spec: InputSpec | None
    classes: tuple[str, ...]
    record: Any = None
    untrained: bool = False
    note: str = ""


def notebook_data(plan: ReportPlan) -> tuple[str, FaceData]:
    """The figure dataset of the plan (RAF-DB as in the paper, else the first present of the preference
    list; the synthetic faces on smoke) and its FaceData as the runs load it."""
    if plan.figure is None:
        raise RuntimeError(f"no dataset to draw on: {plan.figure_why}")
    run_plan = run_config(paper.OURS, "daf_mhsca", plan.figure, plan.profile, plan.seeds[0]).plan
    data, _ = load_data(run_plan.dataset, **run_plan.data_options)
    return plan.figure, data


def run_config(label: str, model: str, dataset: str, profile: str, seed: int) -> RunConfig:
    """The report's config of a method (a Figure 5-7 run where ``model`` is that method's), else its plain config."""
    if paper.MODEL_OF_METHOD.get(label) == model:
        return baseline_config(label, dataset, profile, seed)
    return config(dataset, profile, seed, model=model)


def _untrained(label: str, name: str, classes: tuple[str, ...], image_size: int, why: str) -> LoadedRun:
    """A randomly initialised ``name`` standing in for a run that has no weights here, labelled UNTRAINED."""
    model = build_model(name, len(classes), image_size=image_size).eval()
    return LoadedRun(label, name, model, model.input_spec, classes, untrained=True, note=f"UNTRAINED: random weights {why}")


def load_runs(plan: ReportPlan, methods: Mapping[str, str] | None = None, data: Any = None,
              stand_in: bool = False) -> list[LoadedRun]:
    """The plan's run of each method (label -> model name; default DAN, DDAMFN and DAF-MHSCA) on its figure
    dataset, first seed. A model that is not registered, or a run the engine rejects, comes back with
    ``model=None`` and the reason. A run without a record is an untrained stand-in under ``no_train``
    (else :class:`MissingRun`); a run without its checkpoint is not shown, or stands in untrained with ``stand_in``."""
    out = []
    classes = tuple(data.classes) if data is not None else tuple(f"class_{i}" for i in range(7))
    for label, name in (methods or paper.MODEL_OF_METHOD).items():
        cfg = run_config(label, name, plan.figure, plan.profile, plan.seeds[0])
        if name not in available_models():
            out.append(LoadedRun(label, name, None, None, (), note=f"not run: model {name!r} is not in this version of fer_lib"))
            continue
        try:
            record = get_run(cfg, train=False)
        except (ConfigError, RuntimeError) as err:
            out.append(LoadedRun(label, name, None, None, (), note=f"not run: {err}"))
            continue
        if record is None:
            if not plan.no_train:
                raise MissingRun(cfg.id)
            out.append(_untrained(label, name, classes, cfg.plan.image_size, f"({cfg.id} is {NOT_TRAINED})"))
            continue
        try:
            model, spec = model_of(record)  # on the CPU, beside the faces
        except FileNotFoundError:
            missing = f"{record.id} has no checkpoint here (report built with --no-train)"
            out.append(_untrained(label, name, classes, cfg.plan.image_size, f"stand in, because {missing}") if stand_in else
                       LoadedRun(label, name, None, None, (), note=f"not shown: {missing}"))
            continue
        out.append(LoadedRun(label, name, model, spec, tuple(record.classes), record, note=record.caption()))
    return out
