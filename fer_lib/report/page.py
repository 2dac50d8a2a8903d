"""The notebooks' side of the report, and the only report module they import.

>>> page = open_page(profile, datasets, seeds, device, output_dir, plan, no_train)  # the papermill parameters
>>> outcomes = page.fetch("table3")            # a named run group of the build's plan: records, never trained
>>> page.save_figure(fig, "table3_accuracy")   # figures/table3_accuracy.png beside the pages
>>> page.show_figure(fig, "fig5_confusion", caption_html, "alt text")  # saved, linked and numbered: "Figure 1. ..."
>>> page.publish(Table3(...))                   # the notebook's declared result, read back by the index

In a build, ``plan`` is the path of the ``plan.json`` the build wrote after training every planned
run. Run by hand without one, the page makes the same plan from its parameters
(:func:`fer_lib.report.plan.make_plan`); a planned run without a record then raises
:class:`MissingRun` naming it (build the report, or pass ``no_train=True``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from fer_lib.data import FaceData
from fer_lib.engine import PROFILES as ENGINE_PROFILES
from fer_lib.engine import evidence
from fer_lib.engine.predictions import PREDICTIONS, correct_matrix
from fer_lib.report import published
from fer_lib.report.html import NO_WINNER, markdown_to_html
from fer_lib.report.plan import (
    DEFAULT_READING,
    READINGS,
    REPORT_DIR,
    SYNTHETIC,
    ReportPlan,
    banner,
    make_plan,
    scope_note,
    table5_datasets,
)
from fer_lib.report.published import (
    Attributions,
    Explore,
    Fig5,
    Fig6,
    Fig7,
    Fig8,
    Fig9,
    IndexTable,
    Reading,
    RegionRow,
    Series,
    Table3,
    Table4,
    Table5,
    Walkthrough,
    frame,
)
from fer_lib.report.results import (
    LoadedRun,
    MissingRun,
    Outcome,
    cell,
    data_facts,
    fetch,
    load_run_data,
    load_runs,
    mean_gates,
    model_of,
    notebook_data,
    primary_selection,
    records,
)
from fer_lib.report.tables import column, runs_frame, sweep_caption, sweep_frame, sweep_series, table3_frames


def _test_labels(record: Any) -> np.ndarray:
    """The true class of each test face of a run, in the row order of :func:`correct_matrix`."""
    stored = json.loads((Path(record.dir) / PREDICTIONS).read_text())
    return np.asarray(stored["labels"])[np.argsort(stored["indices"], kind="stable")]


@dataclass
class Page:
    """One notebook's view of the build: its plan, output folder and device."""

    plan: ReportPlan
    output_dir: Path
    device: str = ""
    figures_shown: int = 0  # figures displayed by :meth:`show_figure`: numbers them in display order

    @property
    def profile(self) -> str:
        return self.plan.profile

    @property
    def synthetic(self) -> bool:
        """True when the build trains on the built-in synthetic faces (profiles demo and smoke): no verdicts."""
        return ENGINE_PROFILES[self.profile].synthetic

    @property
    def seeds(self) -> list[int]:
        return self.plan.seeds

    def banner(self) -> str:
        """The profile's warning as an HTML block in the site's banner box, as on the index (fits a Markdown display)."""
        return f'<div class="banner">{markdown_to_html(banner(self.profile))}</div>'


    def header(self) -> str:
        """Markdown opening a page: the profile banner, the seeds and scope, and one line naming the datasets
        run here (the index lists every dataset and why it was not run)."""
        note = scope_note(self.profile)
        ran = [s.label for s in self.plan.statuses if s.run]
        others = any(not s.run for s in self.plan.statuses)
        datasets = f"Datasets run: {', '.join(ran) or 'none'}." + (
            " Why the others were not: see the [index](index.html#datasets)." if others else "")
        return "\n".join([self.banner(), "", f"Seeds: {', '.join(map(str, self.seeds))}." + (f" {note}." if note else ""), "",
                          datasets])

    def fetch(self, group: str) -> dict[Any, list[Outcome]]:
        """A named run group of the plan ("table3", "table4", "table5", "figures", "theta"): key -> outcomes over seeds."""
        return {key: fetch(cfgs, self.plan.no_train, self.plan.skipped) for key, cfgs in self.plan.groups[group].items()}

    def figure_outcomes(self) -> tuple[str | None, str, dict[str, Outcome]]:
        """Figures 5-7: the dataset, why it was chosen, and DAN / DDAMFN / DAF-MHSCA (first seed) on it."""
        return self.plan.figure, self.plan.figure_why, {m: outs[0] for m, outs in self.fetch("figures").items()}

    def figure_data(self) -> tuple[str, FaceData]:
        """The figure dataset's name and faces, as its runs load them."""
        return notebook_data(self.plan)

    def load_runs(self, methods: Mapping[str, str] | None = None, data: Any = None, stand_in: bool = False) -> list[LoadedRun]:
        """A model per method on the figure dataset (see :func:`fer_lib.report.results.load_runs`)."""
        return load_runs(self.plan, methods, data, stand_in)

    def winner(self, options: Mapping[Any, Sequence[Outcome]], within_class: str | None = None) -> Any | None:
        """The option (an N_h, a theta, a method) whose runs beat every other by the one rule
        (:func:`fer_lib.engine.evidence.winner`: paired differences on the same seeds and test faces,
        each interval excluding 0), or None: a synthetic build, fewer than two options, no common seed,
        a run without per-face predictions, or no option supported over every other. ``within_class``:
        only the test faces of that class (a per-class recall). Say :data:`NO_WINNER` where it is None."""
        runs = {k: [o.record for o in outs] for k, outs in options.items()}
        if len(runs) < 2:
            return None
        n = min(len(v) for v in runs.values())
        seeds = [i for i in range(n) if all(v[i] is not None for v in runs.values())]
        if not seeds:
            return None
        try:
            correct = {k: correct_matrix([v[i] for i in seeds]) for k, v in runs.items()}
            if any(c is None for c in correct.values()):
                return None
            if within_class is not None:
                first = runs[next(iter(runs))][seeds[0]]
                if within_class not in first.classes:
                    return None
                faces = _test_labels(first) == first.classes.index(within_class)
                if not faces.any():
                    return None
                correct = {k: c[:, faces] for k, c in correct.items()}
            return evidence.winner(correct, smoke=self.synthetic)
        except ValueError:  # the options were tested on different faces: they cannot be paired
            return None

    def save_figure(self, fig: Any, name: str, dpi: int = 110) -> Path:
        """Keep a figure as ``figures/<name>.png`` beside the pages."""
        path = self.output_dir / "figures" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        return path

    def show_figure(self, fig: Any, name: str, caption: str, alt: str, dpi: int = 110) -> Path:
        """Save ``fig`` as ``figures/<name>.png`` (:meth:`save_figure`), close it, and display it linked, not
        embedded, as ``<figure>`` with "Figure N." and ``caption`` (HTML: escape its text, e.g. with
        :func:`fer_lib.plots.figure_caption`); ``alt`` is plain text, escaped here."""
        import html
        from urllib.parse import quote

        import matplotlib.pyplot as plt
        from IPython.display import HTML, display

        path = self.save_figure(fig, name, dpi)
        plt.close(fig)
        self.figures_shown += 1
        src = html.escape(f"figures/{quote(path.name)}", quote=True)
        display(HTML(f'<figure><img src="{src}" alt="{html.escape(alt, quote=True)}">'
                     f"<figcaption>Figure {self.figures_shown}. {caption}</figcaption></figure>"))
        return path

    def publish(self, result: Any) -> Path:
        """Write the notebook's declared result (a :mod:`fer_lib.report.published` dataclass) beside its page."""
        return published.save(result, self.output_dir)


def open_page(profile: str = "smoke", datasets: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
              device: str = "", output_dir: str | os.PathLike = "", plan: str | os.PathLike = "", no_train: bool = False) -> Page:
    """The page of a notebook from its papermill parameters: the build's ``plan`` file, else a plan made here."""
    report_plan = ReportPlan.from_json(Path(plan).read_text()) if plan else make_plan(profile, datasets, seeds, no_train=no_train)
    out = Path(output_dir) if output_dir else REPORT_DIR / report_plan.profile
    (out / "figures").mkdir(parents=True, exist_ok=True)
    return Page(report_plan, out, device or "")


__all__ = [
    "Attributions", "DEFAULT_READING", "Explore", "Fig5", "Fig6", "Fig7", "Fig8", "Fig9", "IndexTable", "LoadedRun",
    "MissingRun", "NO_WINNER", "Outcome", "Page", "READINGS", "Reading", "RegionRow", "SYNTHETIC", "Series", "Table3", "Table4",
    "Table5", "Walkthrough", "cell", "column", "data_facts", "frame", "load_run_data", "mean_gates", "model_of",
    "open_page", "primary_selection", "records", "runs_frame", "sweep_caption", "sweep_frame", "sweep_series",
    "table3_frames", "table5_datasets",
]
