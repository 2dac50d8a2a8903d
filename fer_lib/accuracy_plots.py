"""Accuracy figures of the report: Tables 3 and 4 as bars, Table 5 and Figure 8 as sweeps.

Each draws our mean over seeds with an error bar only where a point has a 95 % interval
(:func:`fer_lib.engine.evidence.seed_summary`: 3 seeds or more), the published value beside it,
and reference lines a reader can judge a number against: chance (1/K), the majority class of the
test split and, where the plan has it, the ResNet18 control. Footers come from :func:`fer_lib.plots.stamp`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import seaborn as sns

from fer_lib.engine.evidence import Summary, seed_summary
from fer_lib.plots import WRONG, stamp


@dataclass(frozen=True)
class RefLine:
    """A horizontal reference on an accuracy plot (percent): ``kind`` "chance", "majority" or "control"."""

    kind: str
    label: str
    value: float


@dataclass(frozen=True)
class Bar:
    """One bar of :func:`compare_bars`: our result over seeds (None: ``missing`` says why), the published value, a one-class flag."""

    summary: Summary | None
    published: float | None = None
    flag: str = ""
    missing: str = "not run"  # written where there is no summary, e.g. "not trained yet"


REF_STYLES: dict[str, dict[str, Any]] = {"chance": {"linestyle": ":", "linewidth": 1.3},
                                         "majority": {"linestyle": "-.", "linewidth": 1.3},
                                         "control": {"linestyle": (0, (6, 2)), "linewidth": 1.6}}


def reference_lines(reference: Any = None, control: Summary | None = None, control_label: str = "ResNet18 control") -> list[RefLine]:
    """Chance and majority-class lines of a test split (``reference``: anything with ``classes``, ``chance``,
    ``majority`` and ``majority_share``, e.g. a report cell's) and the control's mean where ``control`` is given."""
    lines = []
    if reference is not None:
        lines += [RefLine("chance", f"chance (1/{reference.classes})", reference.chance),
                  RefLine("majority", f"majority class ({reference.majority})", reference.majority_share)]
    if control is not None:
        lines.append(RefLine("control", f"{control_label} (mean of {_seeds([control.n])})", control.mean))
    return lines


def _yerr(s: Summary) -> list[list[float]] | None:
    """Asymmetric error bar of the 95 % interval, or None where there is none (fewer than 3 seeds)."""
    return None if s.ci_low is None else [[s.mean - s.ci_low], [s.ci_high - s.mean]]


def _points(value: Any) -> list[tuple[float, Summary]]:
    """A series (a list of (x, Summary)) as points; an (xs, means, stds) tuple counts as one seed per point (no error bar)."""
    if isinstance(value, tuple) and len(value) == 3 and not isinstance(value[0], tuple):
        return [(float(x), seed_summary([m])) for x, m in zip(value[0], value[1])]
    return [(float(x), s) for x, s in value]


def _seeds(ns: Sequence[int]) -> str:
    return f"{ns[0]} seed{'s' if ns[0] > 1 else ''}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]} seeds"


def _error_bar_note(summaries: Sequence[Summary]) -> str:
    """"error bar = 95 % interval over N seeds" where a point has one; "no interval with 1 seed" for the others."""
    with_ci = sorted({s.n for s in summaries if s.ci_low is not None})
    without = sorted({s.n for s in summaries if s.ci_low is None})
    parts = [f"error bar = 95 % interval over {_seeds(with_ci)}"] if with_ci else []
    return "; ".join(parts + ([f"no interval with {_seeds(without)}"] if without else []))


def _draw_references(ax: Any, lines: Sequence[RefLine], colour: Any = "#555555", suffix: str = "") -> None:
    for line in lines:
        ax.axhline(line.value, color=colour, label=line.label + suffix, **REF_STYLES.get(line.kind, {}))


def sweep_plot(
    series: Mapping[str, Any],
    published: Mapping[str, Mapping[float, float]],
    xlabel: str,
    title: str,
    footer: str,
    logx: bool = False,
    references: Mapping[str, Sequence[RefLine]] | None = None,
) -> plt.Figure:
    """Figs. 8 / Table 5: accuracy against a swept value. ``series`` label -> [(x, Summary over seeds)] of our
    runs (solid; error bars = 95 % interval, only where a point has several seeds); ``published`` label ->
    {x: %} (dashed, hollow markers); ``references`` label -> chance / majority / control lines in its colour."""
    fig, ax = plt.subplots(figsize=(10.0, 4.6))
    points = {label: _points(v) for label, v in series.items()}
    references = references or {}
    labels = list(dict.fromkeys([*points, *published, *references]))  # a dataset keeps one colour throughout
    palette = sns.color_palette("deep", max(len(labels), 1))
    colours = {label: palette[k % len(palette)] for k, label in enumerate(labels)}
    for label, pts in points.items():
        if not pts:
            continue
        xs, summaries = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(xs, [s.mean for s in summaries], marker="o", color=colours[label], label=f"ours: {label} ({_error_bar_note(summaries)})")
        for x, s in pts:
            if (err := _yerr(s)) is not None:
                ax.errorbar([x], [s.mean], yerr=err, capsize=3, color=colours[label])
    for label, pub in published.items():
        xs = sorted(pub)
        ax.plot(xs, [pub[x] for x in xs], linestyle="--", marker="s", mfc="none", color=colours[label], label=f"paper: {label}")
    for label, lines in references.items():
        _draw_references(ax, lines, colours[label], f", {label}" if len(references) > 1 else "")
    if logx:
        ax.set_xscale("log", base=2)
        allx = sorted({x for pts in points.values() for x, _ in pts} | {float(v) for p in published.values() for v in p})
        ax.set_xticks(allx)
        ax.set_xticklabels([f"{v:g}" for v in allx])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return stamp(fig, footer, width=130)


def _bar(value: Any) -> Bar:
    """A :class:`Bar`; a (mean, std, published) triple counts as one seed (no error bar)."""
    if isinstance(value, Bar):
        return value
    mean, _, pub = value
    return Bar(None if mean is None else seed_summary([mean]), pub)


def compare_bars(groups: Mapping[str, Mapping[str, Any]], footer: str, title: str = "",
                 references: Mapping[str, Sequence[RefLine]] | None = None) -> plt.Figure:
    """Tables 3 and 4 as bars: group (dataset) -> variant -> :class:`Bar`. Our mean is the bar (error bar =
    95 % interval, only with several seeds; a one-class flag written on it); the published value a black tick;
    ``references`` group -> chance / majority / control lines across that panel."""
    bars = {g: {v: _bar(b) for v, b in values.items()} for g, values in groups.items()}
    variants = list(dict.fromkeys(v for g in bars.values() for v in g))
    n_groups = max(len(bars), 1)
    fig, axes = plt.subplots(1, n_groups, figsize=(max(4.2, 1.0 + 0.75 * len(variants)) * n_groups + 3.0, 4.2), squeeze=False)
    palette = sns.color_palette("deep", max(len(variants), 1))
    for ax, (group, values) in zip(axes[0], bars.items()):
        for k, variant in enumerate(variants):
            b = values.get(variant)
            if b is None:  # not planned on this dataset
                continue
            if b.summary is not None:
                ax.bar(k, b.summary.mean, yerr=_yerr(b.summary), color=palette[k], capsize=3)
                ax.text(k, b.summary.mean, f"{b.summary.mean:.1f}", ha="center", va="bottom", fontsize=7)
                if b.flag:
                    ax.text(k, 3, b.flag, rotation=90, ha="center", va="bottom", fontsize=6, color=WRONG)
            else:
                ax.text(k, 2, b.missing, rotation=90, ha="center", va="bottom", fontsize=7, color="#888888")
            if b.published is not None:
                ax.plot([k - 0.4, k + 0.4], [b.published] * 2, color="black", linewidth=2)
        for line in (references or {}).get(group, []):
            ax.axhline(line.value, color="#555555", **REF_STYLES.get(line.kind, {}))
            ax.text(0.99, line.value, f"{line.value:.1f}", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=6,
                    color="#333333", bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0, "pad": 0.5})
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels(variants, rotation=30, ha="right", fontsize=8)
        ax.set_title(group, fontsize=10)
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    summaries = [b.summary for g in bars.values() for b in g.values() if b.summary is not None]
    handles = [plt.Line2D([], [], color="black", linewidth=2, label="paper (published)"),
               plt.Rectangle((0, 0), 1, 1, color=palette[0], label="ours (bar" + (f"; {_error_bar_note(summaries)})" if summaries else ")"))]
    kinds = {line.kind for lines in (references or {}).values() for line in lines}
    names = {"chance": "chance (1/K)", "majority": "majority class of the test split", "control": "ResNet18 control (ours)"}
    handles += [plt.Line2D([], [], color="#555555", label=names.get(k, k), **REF_STYLES[k]) for k in REF_STYLES if k in kinds]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return stamp(fig, footer, width=max(90, int(60 * n_groups)))
