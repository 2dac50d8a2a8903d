"""The paper's claims, each judged by the one rule of :mod:`fer_lib.engine.evidence`: the claims ledger.

A claim compares two configs (or one config against the paper's number) on the same test faces;
:func:`ledger` turns the run records of a report's named run groups into one :class:`Row` per claim:
what the paper says, our evidence (mean over seeds, paired difference with its 95 % interval, seeds,
faces) and the verdict. Run groups are the report plan's: ``table3`` ((method, dataset, recipe) ->
records over seeds), ``table4`` ((row, dataset) -> records), ``table5`` ((N_h, dataset) -> records) and
``theta`` (theta -> records), every list in seed order, None for a run not trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from fer_lib import paper
from fer_lib.engine import evidence
from fer_lib.engine.predictions import correct_matrix

Groups = Mapping[str, Mapping[Any, Sequence[Any]]]


@dataclass(frozen=True)
class Row:
    """One claim of the paper and what our records say about it."""

    claim: str  # what the paper says, in a sentence
    source: str  # where it says it
    page: str  # the report page that shows the evidence (notebook stem)
    ours: str  # our evidence in words: means, difference and interval, seeds, faces
    verdict: str  # one of evidence.LABELS
    why: str
    extra: bool = False  # our addition (the ResNet18 control), not a claim of the paper
    seeds: tuple[int, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------- reading the groups


def _pick(group: Mapping[Any, Sequence[Any]], *key: Any) -> Sequence[Any] | None:
    """The records of ``key``; for table3 keys (method, dataset, recipe) the recipe may be left out."""
    if key in group:
        return group[key]
    for k, records in group.items():
        if isinstance(k, tuple) and k[: len(key)] == key:
            return records
    return None


def _paired(a: Sequence[Any] | None, b: Sequence[Any] | None) -> tuple[np.ndarray, np.ndarray, list[Any], list[Any]] | str:
    """Per-face correctness of two configs on their common seeds and those seeds' records, or why there is none."""
    if not a or not b:
        return "not in this build's plan"
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if not pairs:
        return evidence.PENDING
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    ca, cb = correct_matrix(xs), correct_matrix(ys)
    if ca is None or cb is None:
        return "no per-face predictions recorded (predictions.json) for these runs"
    return ca, cb, xs, ys


def _precision(record: Any) -> str:
    return str((getattr(record, "env", None) or {}).get("precision", "?"))


def precision_note(xs: Sequence[Any], ys: Sequence[Any]) -> str:
    """"; seeds 1, 2 pair fp32 with bf16" where paired runs trained in different precisions (``precision=auto``
    resolves per machine; docs/cpu_study.md has the paired fp32 vs bf16 check), "" otherwise."""
    by: dict[tuple[str, str], list[int]] = {}
    for x, y in zip(xs, ys):
        if _precision(x) != _precision(y):
            by.setdefault((_precision(x), _precision(y)), []).append(int(x.config.seed))
    return "".join(f"; seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} pair {px} with {py}"
                   for (px, py), seeds in sorted(by.items()))


def _accuracy_words(records: Iterable[Any]) -> str:
    values = [100 * r.metrics["best_val"]["test"]["accuracy"] for r in records if r is not None and r.metrics.get("best_val")]
    if not values:
        return "no finished run"
    s = evidence.seed_summary(values)
    spread = f" ± {s.std:.2f}" if s.std is not None else ""
    interval = f", 95 % interval [{s.ci_low:.2f}, {s.ci_high:.2f}]" if s.ci_low is not None else ""
    return f"{s.mean:.2f}{spread} % ({s.method}{interval})"


def compare(a: Sequence[Any] | None, b: Sequence[Any] | None, direction: int, smoke: bool, names: tuple[str, str],
             untestable: str | None = None, note_precision: bool = True) -> tuple[str, evidence.Verdict]:
    """Our evidence text and the verdict of "a beats b" (direction +1) from two configs' records.

    ``a``, ``b``: records in seed order, paired by position (None: not trained); also the one home of this
    comparison for ``scripts/paired.py`` and ``scripts/precision_check.py``. ``note_precision``: name the seeds
    whose pair mixes precisions (off where precision is what is compared)."""
    paired = None if untestable else _paired(a, b)
    if isinstance(paired, str) or paired is None:
        why = untestable or paired
        text = f"{names[0]}: {_accuracy_words(a or [])}; {names[1]}: {_accuracy_words(b or [])}"
        if smoke:
            return text, evidence.verdict(None, direction, smoke=True, untestable=why)
        if why == evidence.PENDING:
            return text, evidence.verdict(None, direction, pending=why)
        return text, evidence.verdict(None, direction, untestable=why)
    ca, cb, xs, ys = paired
    seeds = [int(r.config.seed) for r in xs]
    diff = evidence.paired_difference(ca, cb)
    text = (f"{names[0]} {100 * ca.mean():.2f} % vs {names[1]} {100 * cb.mean():.2f} % on the same {diff.n_faces} test faces, "
            f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}: {diff.points:+.2f} points "
            f"[{diff.ci_low:+.2f}, {diff.ci_high:+.2f}]{precision_note(xs, ys) if note_precision else ''}")
    return text, evidence.verdict(diff, direction, smoke=smoke)


def _best_of(options: Mapping[Any, Sequence[Any] | None], claimed: Any, smoke: bool, label: str) -> tuple[str, evidence.Verdict]:
    """"``claimed`` is the best option": supported where it beats every other, contradicted where any beats it; the
    why quotes the deciding pair where the claimed option fares worst."""
    verdicts, texts = {}, []
    for option, records in options.items():
        if option == claimed:
            continue
        text, v = compare(options.get(claimed), records, +1, smoke, (f"{label} {claimed}", f"{label} {option}"))
        verdicts[option] = v
        texts.append(f"vs {label} {option}: " + (f"{v.diff.points:+.2f} [{v.diff.ci_low:+.2f}, {v.diff.ci_high:+.2f}]"
                                                    if v.diff else v.why))
    if not verdicts:
        return "no other option trained", evidence.verdict(None, +1, smoke=smoke, untestable="no other option in this build")
    shown = f"{label} {claimed}: " + "; ".join(texts)
    for label_ in (evidence.SMOKE, evidence.CONTRADICTED, evidence.UNTESTABLE, evidence.PENDING, evidence.INCONCLUSIVE):
        deciding = [(o, v) for o, v in verdicts.items() if v.label == label_]
        if deciding:  # of the pairs with this label, the one where the claimed option fares worst
            option, v = min(deciding, key=lambda item: item[1].diff.points if item[1].diff else math.inf)
            return shown, evidence.Verdict(label_, f"vs {label} {option}: {v.why}")
    return shown, evidence.Verdict(evidence.SUPPORTED, f"{label} {claimed} beats every other value tried")


# ---------------------------------------------------------------- the ledger


def ledger(groups: Groups, datasets: Sequence[str], *, smoke: bool, budget: str, figure_dataset: str | None,
           missing: Mapping[str, str] | None = None) -> list[Row]:
    """One row per claim of the paper (and our control), judged from the records in ``groups``.

    ``datasets``: the paper datasets in the order of its tables; ``missing``: dataset -> why it is not
    run here; ``budget``: one sentence on our training budget (the profile's description).
    """
    missing = dict(missing or {})
    rows: list[Row] = []
    t3, t4, t5, theta = (groups.get(k, {}) for k in ("table3", "table4", "table5", "theta"))

    for ds in datasets:
        label, pub = paper.dataset_label(ds), paper.published(paper.OURS, ds)
        ours = _pick(t3, paper.OURS, ds)
        reason = missing.get(ds) or ("" if ours else "not in this build's plan")
        why = reason or f"an absolute accuracy is not comparable at our budget ({budget})"
        text = _accuracy_words(ours or []) if ours else reason
        v = evidence.verdict(None, +1, smoke=smoke, untestable=why)
        rows.append(Row(f"DAF-MHSCA reaches {pub:.2f} % on {label}", paper.TABLE3_SOURCE, "01_table3_accuracy", text, v.label, v.why))
        for method in ("DAN", "DDAMFN"):
            if paper.published(method, ds) is None:
                continue
            text, v = compare(ours, _pick(t3, method, ds), +1, smoke, ("DAF-MHSCA", method), missing.get(ds))
            rows.append(Row(f"DAF-MHSCA beats {method} on {label} ({pub:.2f} vs {paper.published(method, ds):.2f} %)",
                            paper.TABLE3_SOURCE, "01_table3_accuracy", text, v.label, v.why))

    for ds in datasets:
        label, full = paper.dataset_label(ds), _pick(t4, paper.OURS, ds)
        for row, published in paper.TABLE4.items():
            if row == paper.OURS:
                continue
            drop = published[ds] - paper.TABLE4[paper.OURS][ds]
            text, v = compare(full, _pick(t4, row, ds), +1, smoke, ("full model", row), missing.get(ds))
            rows.append(Row(f"{row} lowers accuracy on {label} ({drop:+.2f} points)", paper.TABLE4_SOURCE,
                            "02_table4_ablations", text, v.label, v.why))
        text, v = compare(full, _pick(t4, paper.CONTROL, ds), +1, smoke, ("full model", paper.CONTROL), missing.get(ds))
        rows.append(Row(f"AFC + DAF + MHSCA beat the bare ResNet18 trunk on {label} (ours: the paper reports no such row)",
                        "our control", "02_table4_ablations", text, v.label, v.why, extra=True))

    for ds in paper.TABLE5_DATASETS:
        options = {h: records for (h, d), records in t5.items() if d == ds}
        if ds in missing or not options:
            v = evidence.verdict(None, +1, smoke=smoke, untestable=missing.get(ds, "not in this build's plan"))
            text = v.why
        else:
            text, v = _best_of(options, 4, smoke, "N_h")
        rows.append(Row(f"N_h = 4 heads is best on {paper.dataset_label(ds)}", paper.TABLE5_SOURCE, "03_table5_heads",
                        text, v.label, v.why))

    options = {t: records for t, records in theta.items()}
    claimed = next((t for t in options if math.isclose(t, paper.FIG8_PEAK["theta"])), None)
    if claimed is None or figure_dataset is None:
        v = evidence.verdict(None, +1, smoke=smoke, untestable="no theta sweep in this build")
        text = v.why
    else:
        text, v = _best_of(options, claimed, smoke, "theta")
        text = f"on {paper.dataset_label(figure_dataset)} (the paper: RAF-DB): {text}"
    rows.append(Row("theta = 0.3 is best", paper.FIG8_SOURCE, "07_fig8_theta", text, v.label, v.why))

    v = evidence.verdict(None, +1, smoke=smoke, untestable="the paper gives neither the batch, the precision, the GPU "
                         "count nor what 'memory usage' measures; our own measurements are on the Figure 9 page")
    rows.append(Row(paper.FIG9_CLAIM, paper.FIG9_SOURCE, "08_fig9_efficiency", "see the Figure 9 page", v.label, v.why))
    v = evidence.verdict(None, +1, smoke=smoke, untestable="no dataset here marks action units; the built-in synthetic "
                         "faces know where each expression lives (attention-in-region on the Figure 7 page)")
    rows.append(Row("DAF-MHSCA's attention maps concentrate on facial action units (periocular regions, oral commissures)",
                    "Figure 7 and Sec. 3.5", "06_fig7_attention", "see the Figure 7 page", v.label, v.why))
    return rows
