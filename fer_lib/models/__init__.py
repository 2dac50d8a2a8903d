"""Model registry: every architecture is built through :func:`build_model`.

Each model's ``forward`` returns a :class:`ModelOutput`, so the trainer, the losses and the
figures treat DAF-MHSCA and the baselines alike. Each model class carries an ``input_spec``
(the size, channels and normalisation it expects) and a ``criterion`` name (the loss recipe
of its paper, looked up in :mod:`fer_lib.losses`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """What a model expects: ``size`` x ``size`` pixels, ``channels`` 1 or 3, then (x - mean) / std on [0, 1]."""

    size: int = 224
    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


@dataclass
class ModelOutput:
    """A forward pass: logits plus what the losses and figures need.

    features:  B x D vector the classifier sees (t-SNE, affinity loss).
    head_maps: B x N x h x w spatial map of each attention head (diversity loss, Fig. 7), or None.
    heads:     B x N x D per-head feature vectors (DAN partition / DDAMFN attention loss), or None.
    extras:    model-specific tensors, e.g. DAF-MHSCA's ``A_s`` (B x C x h x w) and ``A_c`` (B x C).
    """

    logits: torch.Tensor
    features: torch.Tensor
    head_maps: torch.Tensor | None = None
    heads: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make ``build_model(name, ...)`` call the decorated class or function."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = factory
        return factory

    return wrap


def build_model(name: str, num_classes: int, **options) -> nn.Module:
    """Build a registered model by name, e.g. ``build_model("daf_mhsca", 7, num_heads=4)``.

    Its plain convolutions compute tiny CPU maps as unfold + matmul (same function, faster; see
    :mod:`fer_lib.models.layers`)."""
    from fer_lib.models.layers import use_small_map_convs

    _import_all()
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return use_small_map_convs(MODELS[name](num_classes=num_classes, **options))


def available_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    _import_all()
    return sorted(MODELS)


def _import_all() -> None:
    # Importing the modules registers their models; done lazily to keep start-up light.
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
