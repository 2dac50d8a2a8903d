"""Datasets in their official formats, decoded once into a cached uint8 tensor file.

Every loader returns a :class:`FaceData`: all images of all splits as one uint8 tensor, so the
whole dataset can sit in memory (or on the GPU) and be augmented there in batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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


DATASETS: dict[str, Callable[..., FaceData]] = {}


def register_dataset(name: str) -> Callable[[Callable[..., FaceData]], Callable[..., FaceData]]:
    """Decorator: make ``load_dataset(name, ...)`` call the decorated loader."""

    def wrap(loader: Callable[..., FaceData]) -> Callable[..., FaceData]:
        DATASETS[name] = loader
        return loader

    return wrap


class DatasetError(ValueError):
    """A dataset that cannot be read as given; the message names the file and what to do."""


# Loader modules; importing one registers its datasets.
_LOADER_MODULES = ("fer2013", "ferplus", "rafdb", "affectnet", "folder", "synthetic")


def _import_loaders() -> None:
    import importlib

    for module in _LOADER_MODULES:
        importlib.import_module(f"{__name__}.{module}")


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    _import_loaders()
    return sorted(DATASETS)


def load_dataset(name: str, root: str | os.PathLike | None = None, **options) -> FaceData:
    """Load a registered dataset by name, e.g. ``load_dataset("fer2013")`` or ``load_dataset("synthetic", seed=1)``.

    ``root`` is where the datasets live (default: :func:`data_root`); ``options`` go to the loader
    (``cache=False`` skips the decoded-tensor cache of the file-based loaders).
    """
    _import_loaders()
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name](root=root, **options)
