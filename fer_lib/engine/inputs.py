"""The engine's access to data: :func:`fer_lib.data.load_dataset` and the on-device ``Augment``.

Each returns, beside the object, the name of the code behind it, which the run record keeps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fer_lib.data import FaceData, available_datasets, load_dataset
from fer_lib.data.pipeline import Augment
from fer_lib.models import InputSpec


def known_datasets() -> list[str]:
    """Dataset names ``load_dataset`` accepts."""
    return available_datasets()


def load_data(name: str, **options: Any) -> tuple[FaceData, str]:
    """Load a dataset; returns it and the name of the code that loaded it (for the record)."""
    return load_dataset(name, **options), "fer_lib.data.load_dataset"


def make_augment(spec: InputSpec, train: bool, params: dict[str, Any]) -> tuple[nn.Module, str]:
    """The batched on-device transform for training (``train=True``) or evaluation."""
    return Augment(spec, train=train, **params), "fer_lib.data.pipeline.Augment"


def model_input(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """uint8 B x C x H x W -> the normalised float batch a model sees at evaluation, on the images' device."""
    transform, _ = make_augment(spec, train=False, params={})
    with torch.no_grad():
        return transform.to(images.device)(images)
