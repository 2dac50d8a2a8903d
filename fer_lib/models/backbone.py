"""ResNet18 trunk (torchvision, without avgpool and fc) and loading of local pretrained weights.

The paper starts from DAN's MS-Celeb-1M ``resnet18_msceleb.pth``. Nothing is downloaded here:
weights come from a local file or the trunk starts from random initialisation.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18


class BackboneWeightsError(RuntimeError):
    """A backbone weight file is missing or does not fit the ResNet18 trunk."""


def resnet18_trunk() -> nn.Sequential:
    """torchvision ResNet18 up to layer4: B x 3 x H x W -> B x 512 x H/32 x W/32 (x_F)."""
    net = resnet18(weights=None)
    return nn.Sequential(*list(net.children())[:-2])


_TRUNK_KEYS = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")
_TRUNK_INDEX = {name: str(i) for i, name in enumerate(("conv1", "bn1", "relu", "maxpool", *_TRUNK_KEYS[2:]))}


def _to_trunk_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map torchvision names (``layer1.0.conv1.weight``) onto nn.Sequential indices (``4.0.conv1.weight``)."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        head, _, rest = key.partition(".")
        if head in ("fc", "feature", "num_batches_tracked"):
            continue  # classifier heads of the pretraining task are dropped
        if head in _TRUNK_INDEX:
            out[f"{_TRUNK_INDEX[head]}.{rest}"] = value
        else:
            out[key] = value
    return out


def load_backbone_weights(trunk: nn.Module, path: str | os.PathLike) -> None:
    """Load a local ResNet18 state dict into ``trunk``.

    Accepts DAN's ``resnet18_msceleb.pth`` layout (a dict whose ``state_dict`` holds torchvision
    key names, fc included and dropped) or a plain torchvision state dict. Raises
    :class:`BackboneWeightsError` naming the path and the keys that did not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise BackboneWeightsError(
            f"backbone weights not found: {path}. Put DAN's resnet18_msceleb.pth (or a torchvision "
            "resnet18 state dict) there, or leave the option unset to start from random initialisation."
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or non-torch file
        raise BackboneWeightsError(f"cannot read backbone weights {path}: {err}") from err
    if isinstance(blob, dict) and isinstance(blob.get("state_dict"), dict):
        blob = blob["state_dict"]
    if not isinstance(blob, dict):
        raise BackboneWeightsError(f"{path} holds a {type(blob).__name__}, not a state dict")
    state = _to_trunk_keys(blob)
    own = trunk.state_dict()
    missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in own)
    misshaped = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or misshaped:
        names = {index: name for name, index in _TRUNK_INDEX.items()}

        def show(keys: list[str]) -> str:
            keys = [names.get(k.partition(".")[0], k.partition(".")[0]) + "." + k.partition(".")[2] for k in keys]
            return ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")

        raise BackboneWeightsError(
            f"{path} does not fit the ResNet18 trunk: missing keys [{show(missing)}], "
            f"unexpected keys [{show(unexpected)}], wrong shapes [{show(misshaped)}]"
        )
    trunk.load_state_dict(state, strict=False)


def build_trunk(pretrained: str | os.PathLike | None = None) -> nn.Sequential:
    """The ResNet18 trunk, from ``pretrained`` (a local file) when given, else randomly initialised."""
    trunk = resnet18_trunk()
    if pretrained:
        load_backbone_weights(trunk, pretrained)
    return trunk
