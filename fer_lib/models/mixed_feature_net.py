"""MixedFeatureNet: the backbone of DDAMFN (Zhang et al., Electronics 2023).

A MobileFaceNet whose depthwise convolutions are mixed-kernel (MixConv, kernels 3/5/7/9 over
channel groups) and whose bottlenecks carry coordinate attention. Only the part DDAMFN uses is
built: the stem up to the 1x1 expansion to 512 channels (``conv_6_sep``); the face-embedding
tail (global depthwise conv, linear, BN) is not. A 112 px face gives a B x 512 x 7 x 7 map.

Attribute names follow the public MixedFeatureNet so that a state dict of it (converted from
``MFN_msceleb.pth``) can be loaded with :func:`load_mfn_weights`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fer_lib.models.layers import sigmoid32


class ConvBlock(nn.Module):
    """Conv (no bias) -> BN -> PReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.prelu = nn.PReLU(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class LinearBlock(nn.Module):
    """Conv (no bias) -> BN, no activation (MobileFaceNet's linear bottleneck projection and GDConv)."""

    def __init__(self, c_in: int, c_out: int, kernel: int | tuple[int, int] = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def hard_swish(x: torch.Tensor) -> torch.Tensor:
    """x * ReLU6(x + 3) / 6, the activation of coordinate attention."""
    return x * F.relu6(x + 3) / 6


class CoordAtt(nn.Module):
    """Coordinate attention (Hou et al. 2021): average-pool rows and columns, shared 1x1 conv, two sigmoid gates."""

    def __init__(self, channels: int, reduction: int = 32):
        super().__init__()
        mid = max(8, channels // reduction)
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, channels, 1)  # gate along the height
        self.conv3 = nn.Conv2d(mid, channels, 1)  # gate along the width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        rows = x.mean(dim=3, keepdim=True)  # B x C x h x 1
        cols = x.mean(dim=2, keepdim=True).transpose(2, 3)  # B x C x w x 1
        y = hard_swish(self.bn1(self.conv1(torch.cat([rows, cols], dim=2))))
        y_h, y_w = torch.split(y, [h, w], dim=2)
        a_h = sigmoid32(self.conv2(y_h))  # B x C x h x 1
        a_w = sigmoid32(self.conv3(y_w.transpose(2, 3)))  # B x C x 1 x w
        return x * a_h * a_w


class MixConv(nn.Module):
    """Mixed depthwise convolution: channel groups of ``splits`` sizes, each with its own odd kernel."""

    def __init__(self, kernels: list[int], splits: list[int], stride: int):
        super().__init__()
        self.splits = splits
        self.mixed_depthwise_conv = nn.ModuleList(
            nn.Conv2d(c, c, k, stride, padding=k // 2, groups=c, bias=False) for k, c in zip(kernels, splits)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.splits, dim=1)
        return torch.cat([conv(p) for conv, p in zip(self.mixed_depthwise_conv, parts)], dim=1)


class MixDepthWise(nn.Module):
    """Bottleneck: 1x1 expand (ConvBlock) -> MixConv -> coordinate attention -> 1x1 linear projection (+ residual)."""

    def __init__(self, c_in: int, c_out: int, expanded: int, kernels: list[int], splits: list[int],
                 stride: int = 1, residual: bool = False):
        super().__init__()
        assert sum(splits) == expanded, (splits, expanded)
        self.conv = ConvBlock(c_in, expanded)
        self.conv_dw = MixConv(kernels, splits, stride)  # no BN or activation after it, as in the public code
        self.CA = CoordAtt(expanded)
        self.project = LinearBlock(expanded, c_out)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.CA(self.conv_dw(self.conv(x))))
        return x + y if self.residual else y


class MixResidual(nn.Module):
    """``num_block`` residual bottlenecks at constant width and resolution."""

    def __init__(self, channels: int, num_block: int, expanded: int, kernels: list[int], splits: list[int]):
        super().__init__()
        self.model = nn.Sequential(
            *(MixDepthWise(channels, channels, expanded, kernels, splits, residual=True) for _ in range(num_block))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MixedFeatureNet(nn.Module):
    """MixedFeatureNet trunk: B x 3 x S x S -> B x 512 x S/16 x S/16 (112 -> 7)."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConvBlock(3, 64, 3, stride=2, padding=1)  # 112 -> 56
        self.conv2_dw = ConvBlock(64, 64, 3, padding=1, groups=64)
        self.conv_23 = MixDepthWise(64, 64, 128, [3, 5, 7], [64, 32, 32], stride=2)  # -> 28
        self.conv_3 = MixResidual(64, 9, 128, [3, 5], [96, 32])
        self.conv_34 = MixDepthWise(64, 128, 256, [3, 5, 7], [128, 64, 64], stride=2)  # -> 14
        self.conv_4 = MixResidual(128, 16, 256, [3, 5], [192, 64])
        self.conv_45 = MixDepthWise(128, 256, 1024, [3, 5, 7, 9], [256, 256, 256, 256], stride=2)  # -> 7
        self.conv_5 = MixResidual(256, 6, 512, [3, 5, 7], [172, 170, 170])
        self.conv_6_sep = ConvBlock(256, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.children():
            x = block(x)
        return x


# Parts of the public MixedFeatureNet that DDAMFN never runs: the embedding tail and the unused BN/PReLU of MixConv.
_UNUSED = ("conv_6_dw.", "conv_6_flatten.", "linear.", "bn.")
_UNUSED_INSIDE = (".conv_dw.bn.", ".conv_dw.prelu.")


class MFNWeightsError(RuntimeError):
    """A MixedFeatureNet weight file is missing or does not fit."""


def load_mfn_weights(net: MixedFeatureNet, path: str | os.PathLike) -> None:
    """Load a MixedFeatureNet state dict (public key names; ``module.`` and unused tail keys are dropped).

    The public ``MFN_msceleb.pth`` is a pickled module; turn it into a state dict first, e.g.
    ``torch.save(torch.load(p).state_dict(), "mfn_msceleb_state.pth")`` where its code is importable.
    """
    path = Path(path)
    if not path.is_file():
        raise MFNWeightsError(f"MixedFeatureNet weights not found: {path}; leave pretrained unset to start from random init.")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(blob, dict) and isinstance(blob.get("state_dict"), dict):
        blob = blob["state_dict"]
    state = {}
    for key, value in blob.items():
        key = key.removeprefix("module.")
        if key.startswith(_UNUSED) or any(part in key for part in _UNUSED_INSIDE):
            continue
        state[key] = value
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise MFNWeightsError(
            f"{path} does not fit MixedFeatureNet: missing {missing[:8]}, unexpected {result.unexpected_keys[:8]}"
        )
