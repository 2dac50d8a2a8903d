"""The engine's access to data: :func:`fer_lib.data.load_dataset` and the on-device ``Augment``.

Both come from :mod:`fer_lib.data`; the small fallbacks here (procedural synthetic faces, resize +
flip + normalise) only stand in while that package lacks them, and say so in the run record.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from fer_lib import PROJECT_ROOT
from fer_lib.data import DATASETS, SPLITS, FaceData, data_root
from fer_lib.models import InputSpec


def _pipeline_augment() -> type | None:
    try:
        from fer_lib.data.pipeline import Augment
    except ImportError:
        return None
    return Augment


def _data_loader() -> Any:
    """``fer_lib.data.load_dataset`` once its loader modules import, else None (the fallbacks below)."""
    try:
        from fer_lib.data import available_datasets, load_dataset

        available_datasets()
    except ImportError:
        return None
    return load_dataset


def known_datasets() -> list[str]:
    """Dataset names ``load_dataset`` accepts."""
    if _data_loader() is None:  # the loaders' contract names, until fer_lib.data registers them
        from fer_lib.engine.recipes import NUM_CLASSES

        return sorted(set(DATASETS) | set(NUM_CLASSES))
    from fer_lib.data import available_datasets

    return available_datasets()


def load_data(name: str, **options: Any) -> tuple[FaceData, str]:
    """Load a dataset; returns it and the name of the code that loaded it (for the record)."""
    loader = _data_loader()
    if loader is not None:
        return loader(name, **options), "fer_lib.data.load_dataset"
    if name == "synthetic":
        return synthetic_faces(**options), "fer_lib.engine.inputs.synthetic_faces (fallback)"
    if name in ("fer2013", "ferplus"):
        return fer_csv(name, **options), "fer_lib.engine.inputs.fer_csv (fallback)"
    raise RuntimeError(f"fer_lib.data.load_dataset is not available yet, so {name!r} cannot be loaded")


def make_augment(spec: InputSpec, train: bool, params: dict[str, Any]) -> tuple[nn.Module, str]:
    """The batched on-device transform for training (``train=True``) or evaluation."""
    augment = _pipeline_augment()
    if augment is not None:
        return augment(spec, train=train, **params), "fer_lib.data.pipeline.Augment"
    return BasicAugment(spec, train=train, **params), "fer_lib.engine.inputs.BasicAugment (fallback)"


class BasicAugment(nn.Module):
    """Fallback transform: uint8 B x C x H x W -> resize, random horizontal flip (train), grey -> RGB, normalise."""

    def __init__(self, spec: InputSpec, train: bool = True, flip: float = 0.5):
        super().__init__()
        self.spec, self.train_mode, self.flip = spec, train, flip
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255)
        if x.shape[-1] != self.spec.size or x.shape[-2] != self.spec.size:
            x = F.interpolate(x, size=(self.spec.size, self.spec.size), mode="bilinear", align_corners=False)
        if self.train_mode and self.flip > 0:
            flip = torch.rand(x.shape[0], device=x.device) < self.flip
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if x.shape[1] != self.spec.channels:
            x = x.expand(-1, self.spec.channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return (x - mean) / std


def synthetic_faces(num_classes: int = 7, per_class: Sequence[int] = (40, 10, 10), size: int = 48, seed: int = 0, **_: Any) -> FaceData:
    """Fallback synthetic data: a grey oval 'face' whose mouth curvature and brow tilt follow the class, plus noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    images, labels, split = [], [], []
    for part, count in enumerate(per_class):
        for c in range(num_classes):
            for _ in range(count):
                bend = math.cos(math.pi * c / max(1, num_classes - 1)) * 0.4 + 0.05 * torch.randn((), generator=g)
                tilt = math.sin(2 * math.pi * c / num_classes) * 0.3
                face = ((xx / 0.8) ** 2 + (yy / 0.95) ** 2 < 1).float() * 0.6
                mouth = ((yy - 0.45 - bend * xx**2).abs() < 0.06) & (xx.abs() < 0.45)
                brows = ((yy + 0.45 - tilt * xx.sign() * xx).abs() < 0.05) & (xx.abs() > 0.15) & (xx.abs() < 0.6)
                img = face - 0.5 * mouth.float() - 0.4 * brows.float() + 0.1 * torch.randn(size, size, generator=g)
                images.append((img.clamp(0, 1) * 255).round().to(torch.uint8))
                labels.append(c)
                split.append(part)
    return FaceData(
        name="synthetic",
        classes=tuple(f"class_{c}" for c in range(num_classes)),
        images=torch.stack(images).unsqueeze(1),
        labels=torch.tensor(labels, dtype=torch.int64),
        split=torch.tensor(split, dtype=torch.int8),
        synthetic=True,
        source="procedural faces drawn by fer_lib.engine.inputs (fallback)",
    )


FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FERPLUS_CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
USAGE = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}


def _fer2013_arrays(root: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fer2013.csv(.gz) as (N x 1 x 48 x 48 uint8, labels, split), decoded once into an ignored cache."""
    cache = PROJECT_ROOT / ".cache" / "engine" / "fer2013.pt"
    if cache.exists():
        return torch.load(cache)
    import pandas as pd

    path = root / "fer2013" / "fer2013.csv.gz"
    if not path.exists():
        path = root / "fer2013" / "fer2013.csv"
    table = pd.read_csv(path)
    pixels = np.array(" ".join(table["pixels"]).split(), dtype=np.uint8).reshape(len(table), 1, 48, 48)
    arrays = (torch.from_numpy(pixels), torch.tensor(table["emotion"].to_numpy(), dtype=torch.int64),
              torch.tensor(table["Usage"].map(USAGE).to_numpy(), dtype=torch.int8))
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(arrays, cache)
    return arrays


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """Microsoft's FERPlus majority rule: drop single votes, keep the top class if it holds more than half of
    the rest, else unknown; returns the class index or -1 (unknown, not-a-face or no majority)."""
    v = np.where(votes <= 1, 0, votes).astype(float)
    total, top = v.sum(1), v.max(1)
    label = v.argmax(1)
    keep = (total > 0) & (top > 0.5 * total) & (label < 8)
    return np.where(keep, label, -1)


def fer_csv(name: str, root: str | None = None) -> FaceData:
    """Fallback FER2013 / FERPlus loader (official csv files; train / val / test = Training / PublicTest / PrivateTest)."""
    base = data_root(root)
    images, labels, split = _fer2013_arrays(base)
    if name == "fer2013":
        return FaceData("fer2013", FER2013_CLASSES, images, labels, split, source=str(base / "fer2013"))
    import pandas as pd

    table = pd.read_csv(base / "ferplus" / "fer2013new.csv")
    votes = table[list(FERPLUS_CLASSES) + ["unknown", "NF"]].to_numpy()
    major = ferplus_majority(votes)
    keep = torch.from_numpy(np.nonzero(major >= 0)[0])
    plus_split = torch.tensor(table["Usage"].map(USAGE).to_numpy(), dtype=torch.int8)
    soft = torch.tensor(votes[:, :8], dtype=torch.float32)
    soft = soft / soft.sum(1, keepdim=True).clamp_min(1)
    return FaceData("ferplus", FERPLUS_CLASSES, images[keep], torch.from_numpy(major)[keep].long(), plus_split[keep],
                    soft_labels=soft[keep], source=str(base / "ferplus"))
