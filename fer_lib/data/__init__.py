"""Datasets in their official formats, decoded once into a cached uint8 tensor file.

Every loader returns a :class:`FaceData`: all images of all splits as one uint8 tensor, so the
whole dataset can sit in memory (or on the GPU) and be augmented there in batches. Each loader
module describes its datasets where it defines them (:class:`DatasetInfo`, passed to
:func:`register_dataset`); the modules of this package are found with ``pkgutil``, so a new
dataset is one new module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from fer_lib import PROJECT_ROOT

SPLITS = ("train", "val", "test")
DATA_ENV = "FER_DATA"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where datasets live: ``root`` if given, else $FER_DATA, else ``../shared/data`` beside the project."""
    if root is not None:
        return Path(root)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return PROJECT_ROOT.parent / "shared" / "data"


@dataclass
class FaceData:
    """A dataset held whole in memory.

    images: N x C x H x W uint8 (C is 1 for grey sources, 3 for colour).
    labels: N int64 class indices into ``classes``.
    split:  N int8, an index into :data:`SPLITS` (0 train, 1 val, 2 test).
    soft_labels: N x K float vote distribution where the source has one (FERPlus), else None.
    masks: N x H x W uint8, 1 where the expression is carried (built-in synthetic data only), else None.
    synthetic: True for the built-in procedurally drawn faces; every figure must say so.
    fingerprint: a digest of the sources' checksums and the loader's options (its cache key):
        two loads with the same fingerprint hold the same faces; a run record keeps it.
    """

    name: str
    classes: tuple[str, ...]
    images: torch.Tensor
    labels: torch.Tensor
    split: torch.Tensor
    soft_labels: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    synthetic: bool = False
    source: str = ""
    fingerprint: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def indices(self, split: str) -> torch.Tensor:
        """Row indices of one split ('train', 'val' or 'test')."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        return torch.nonzero(self.split == SPLITS.index(split), as_tuple=False).flatten()

    def class_counts(self, split: str = "train") -> torch.Tensor:
        """Samples per class in one split, as a length-K int64 tensor."""
        return torch.bincount(self.labels[self.indices(split)], minlength=self.num_classes)


@dataclass(frozen=True)
class DatasetInfo:
    """What is known of a dataset before loading it (timm's ``default_cfgs`` for data).

    label: how tables write it. classes: class names in label order (None: read from the files).
    stored_side: side of the faces as stored (None: a loader option). grey: stored with one channel.
    table2: the paper's Table 2 training row (lr, batch size), or None. table2_row: the dataset whose
    Table 2 row applies (the same faces in another format), if not this one. find: a cheap look-up of
    the files under a data root (no decoding) that returns a path or raises :class:`DatasetError`;
    None when nothing is read. synthetic: the built-in drawn faces.
    """

    label: str
    classes: tuple[str, ...] | None = None
    stored_side: int | None = None
    grey: bool = False
    table2: dict[str, Any] | None = field(default=None, hash=False)
    table2_row: str | None = None
    find: Callable[[str | os.PathLike | None], Path] | None = field(default=None, compare=False)
    synthetic: bool = False

    @property
    def num_classes(self) -> int | None:
        return len(self.classes) if self.classes else None


DATASETS: dict[str, Callable[..., FaceData]] = {}
INFO: dict[str, DatasetInfo] = {}


def register_dataset(name: str, info: DatasetInfo) -> Callable[[Callable[..., FaceData]], Callable[..., FaceData]]:
    """Decorator: make ``load_dataset(name, ...)`` call the decorated loader, described by ``info``."""

    def wrap(loader: Callable[..., FaceData]) -> Callable[..., FaceData]:
        if name in DATASETS and DATASETS[name] is not loader:
            raise ValueError(f"dataset {name!r} registered twice")
        DATASETS[name] = loader
        INFO[name] = info
        return loader

    return wrap


class DatasetError(ValueError):
    """A dataset that cannot be read as given; the message names the file and what to do."""


def _import_loaders() -> None:
    # Importing the modules of this package registers their datasets (as fer_lib.models does for models).
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    _import_loaders()
    return sorted(DATASETS)


def dataset_info(name: str) -> DatasetInfo | None:
    """The description of a registered dataset, or None for an unknown name."""
    _import_loaders()
    return INFO.get(name)


def table2_row(name: str) -> dict[str, Any] | None:
    """The paper's Table 2 row (lr, batch size) that applies to ``name`` (its own or its ``table2_row``'s), or None."""
    info = dataset_info(name)
    row = dataset_info(info.table2_row) if info is not None and info.table2_row else info
    return dict(row.table2) if row is not None and row.table2 else None


def load_dataset(name: str, root: str | os.PathLike | None = None, **options) -> FaceData:
    """Load a registered dataset by name, e.g. ``load_dataset("fer2013")`` or ``load_dataset("synthetic", seed=1)``.

    ``root`` is where the datasets live (default: :func:`data_root`); ``options`` go to the loader
    (``cache=False`` skips the decoded-tensor cache of the file-based loaders).
    """
    _import_loaders()
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name](root=root, **options)
