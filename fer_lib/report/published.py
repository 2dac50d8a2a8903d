"""What each notebook publishes: one dataclass per notebook, saved as ``<stem>.json`` beside its page.

A notebook fills its result and calls ``page.publish(result)``; the index, the notes and the tests
read the fields back with :func:`load` (``load(out_dir, Table3)``), never by string keys. Tables
are kept as :func:`frame` dicts ({columns, index, data}).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

Frame = dict[str, Any]  # a DataFrame as {"columns": [...], "index": [...], "data": [[...], ...]}


def frame(df: Any) -> Frame:
    """A DataFrame as a JSON-ready dict; multi-level column names joined by " / "."""
    cols = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in df.columns]
    return {"columns": cols, "index": [str(i) for i in df.index], "data": df.astype(object).values.tolist()}


# ---------------------------------------------------------------- one result per notebook


@dataclass
class IndexTable:
    """The index page's table: DAF-MHSCA published vs reproduced, one row per dataset."""

    columns: list[str]
    rows: list[dict[str, str]]
    caption: str


@dataclass
class Table3:
    STEM: ClassVar[str] = "01_table3_accuracy"
    index: IndexTable
    table3: Frame
    runs: list[str]
    data: dict[str, dict[str, Any]]  # dataset -> data facts of its first DAF-MHSCA run
    rafdb_recipes: dict[str, str]  # recipe -> cell text, where RAF-DB ran


@dataclass
class Reading:
    """An alternative reading of a vague passage against the default reading, on one dataset."""

    dataset: str
    ours: float | None
    default: float | None
    gates: dict[str, float]


@dataclass
class Table4:
    STEM: ClassVar[str] = "02_table4_ablations"
    table4: Frame
    runs: list[str]
    ablations: dict[str, dict[str, float | None]]  # dataset -> variant -> mean accuracy (%)
    readings: dict[str, Reading]


@dataclass
class Series:
    """A sweep on one dataset: x values and mean accuracy (%) over seeds."""

    x: list[float]
    mean: list[float]
    std: list[float] = field(default_factory=list)


@dataclass
class Table5:
    STEM: ClassVar[str] = "03_table5_heads"
    table5: Frame
    runs: list[str]
    series: dict[str, Series]  # dataset label -> N_h sweep


@dataclass
class Fig5:
    STEM: ClassVar[str] = "04_fig5_confusion"
    dataset: str | None
    per_class_recall: Frame | None  # classes x methods, in %


@dataclass
class Fig6:
    STEM: ClassVar[str] = "05_fig6_tsne"
    dataset: str | None
    silhouette: dict[str, float]  # method -> silhouette score (cosine) of its test features


@dataclass
class Fig7:
    STEM: ClassVar[str] = "06_fig7_attention"
    dataset: str | None
    faces: list[int]
    correct: dict[str, int]  # method -> faces predicted right


@dataclass
class Fig8:
    STEM: ClassVar[str] = "07_fig8_theta"
    dataset: str | None
    theta: Series


@dataclass
class Fig9:
    STEM: ClassVar[str] = "08_fig9_efficiency"
    rows: list[dict[str, Any]]  # fer_lib.efficiency.measure rows
    machine: dict[str, Any]


@dataclass
class Explore:
    STEM: ClassVar[str] = "09_explore_heads"
    dataset: str
    shown: list[str]  # runs drawn in the static panels
    untrained: list[str]  # of those, the stand-ins with random weights


@dataclass
class RegionRow:
    """One map kind of one model: its mass inside the expression regions against their area."""

    model: str
    map: str
    family: str  # "attention" or "attribution"
    mass: float
    area: float
    lift: float  # mass / area; 1 = no preference for the regions


@dataclass
class Attributions:
    STEM: ClassVar[str] = "10_attributions"
    dataset: str
    synthetic: bool
    seed: int
    faces: list[int]
    runs: dict[str, str]  # label -> note
    agreement: list[dict[str, Any]]  # model, attention, attribution, Spearman agreement
    regions: list[RegionRow]


@dataclass
class Walkthrough:
    STEM: ClassVar[str] = "11_walkthrough"
    dataset: str
    face: int
    steps: int
    same_logits: bool
    max_difference: float
    untrained: bool


@dataclass
class TrainingCurves:
    STEM: ClassVar[str] = "12_training_curves"
    runs: list[str]  # every run drawn, in plan order
    groups: dict[str, list[str]]  # plan group ("table3", ...) -> ids of its runs drawn
    missing: dict[str, str]  # planned run id -> why it is not drawn


RESULTS = (Table3, Table4, Table5, Fig5, Fig6, Fig7, Fig8, Fig9, Explore, Attributions, Walkthrough, TrainingCurves)


# ---------------------------------------------------------------- saving and loading

T = TypeVar("T")


def save(result: Any, out_dir: str | os.PathLike) -> Path:
    """``<out_dir>/<STEM>.json`` of a result."""
    path = Path(out_dir) / f"{result.STEM}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(result), indent=1, default=_plain) + "\n")
    return path


def load(out_dir: str | os.PathLike, kind: type[T]) -> T | None:
    """The published result of ``kind``'s notebook in ``out_dir``, or None if that notebook did not publish."""
    path = Path(out_dir) / f"{kind.STEM}.json"
    return _build(kind, json.loads(path.read_text())) if path.exists() else None


def _plain(obj: Any) -> Any:
    if hasattr(obj, "columns") and hasattr(obj, "index"):
        return frame(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def _build(kind: Any, value: Any) -> Any:
    """``value`` (parsed JSON) as ``kind``: dataclasses field by field, inside lists, dicts and ``X | None``."""
    if value is None:
        return None
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _build(inner[0], value) if len(inner) == 1 else value
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(**{f.name: _build(hints[f.name], value[f.name]) for f in dataclasses.fields(kind) if f.name in value})
    if origin is list:
        return [_build(args[0], v) for v in value]
    if origin is dict:
        return {k: _build(args[1], v) for k, v in value.items()}
    return value
